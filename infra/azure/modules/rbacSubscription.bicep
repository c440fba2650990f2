// Role assignments at the scope of one subscription (the module's scope).
targetScope = 'subscription'

@description('Role assignments to create at this subscription: { principalId, roleDefinitionId (role GUID), description }.')
param assignments array

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for a in assignments: {
    name: guid(subscription().id, a.principalId, a.roleDefinitionId)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleDefinitionId)
      principalId: a.principalId
      principalType: 'ServicePrincipal'
      description: a.description
    }
  }
]
