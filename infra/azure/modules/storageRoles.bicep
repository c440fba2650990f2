// Role assignments scoped to single blob containers and queues of storage accounts in this
// resource group: the narrowest scope Azure RBAC offers for storage data.
targetScope = 'resourceGroup'

@description('Assignments on blob containers: { storageAccountName, containerName, principalId, roleDefinitionId (role GUID), description }.')
param containerAssignments array = []

@description('Assignments on queues: { storageAccountName, queueName, principalId, roleDefinitionId (role GUID), description }.')
param queueAssignments array = []

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [
  for a in containerAssignments: {
    name: '${a.storageAccountName}/default/${a.containerName}'
  }
]

resource containerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (a, i) in containerAssignments: {
    name: guid(containers[i].id, a.principalId, a.roleDefinitionId)
    scope: containers[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleDefinitionId)
      principalId: a.principalId
      principalType: 'ServicePrincipal'
      description: a.description
    }
  }
]

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [
  for a in queueAssignments: {
    name: '${a.storageAccountName}/default/${a.queueName}'
  }
]

resource queueAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (a, i) in queueAssignments: {
    name: guid(queues[i].id, a.principalId, a.roleDefinitionId)
    scope: queues[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', a.roleDefinitionId)
      principalId: a.principalId
      principalType: 'ServicePrincipal'
      description: a.description
    }
  }
]
