// Role assignments at the scope of one resource group (the module's scope).
targetScope = 'resourceGroup'

@description('Role assignments to create at this resource group: { principalId, roleDefinitionId (role GUID), description }.')
param assignments array

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in assignments: {
    name: guid(resourceGroup().id, a.principalId, a.roleDefinitionId)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleDefinitionId)
      principalId: a.principalId
      principalType: 'ServicePrincipal'
      description: a.description
    }
  }
]
