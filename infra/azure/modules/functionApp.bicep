// One patchwatch handler as a Linux Flex Consumption Function App running the Rust binary as a
// custom handler.
//
// Each app gets its own host storage account (AzureWebJobsStorage and its deployment container):
// the Functions host keeps the app's function keys in that account, so a shared account would let
// one handler read another handler's keys. The identity is created by main.bicep and passed in,
// so every role assignment name below is guid(scope, principalId, role) with values known when
// this nested deployment starts.

@description('Function App name; also the host name <name>.azurewebsites.net. Globally unique.')
param name string

@description('Handler key, used in tags and descriptions: events, alerts or itsm.')
@allowed([
  'events'
  'alerts'
  'itsm'
])
param handler string

@description('Azure region of the app, its plan and its host storage account.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string

@description('Principal (object) id of that identity, for its role assignments.')
param identityPrincipalId string

@description('Name of the storage account created for this app only (host storage and deployment package).')
@minLength(3)
@maxLength(24)
param hostStorageName string

@description('Storage queue the app triggers on through AzureWebJobsStorage (queueTrigger); empty for none. A "<name>-poison" queue is created next to it.')
param triggerQueueName string = ''

@description('Application Insights component in this resource group; the app sends telemetry with its identity.')
param applicationInsightsName string

@description('Key Vault (RBAC authorization mode) in this resource group holding the app\'s secrets.')
param keyVaultName string

@description('Secrets the app reads: [{ env: environment variable, secret: Key Vault secret name }]. Every secret must exist in the vault; the app gets Key Vault Secrets User on exactly these secrets.')
param secrets array = []

@description('Plain (non-secret) app settings: name -> value.')
param settings object = {}

@description('Flex Consumption runtime stack version for the "custom" runtime (see az functionapp list-flexconsumption-runtimes).')
param runtimeVersion string = '1.0'

@description('Upper bound of instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Replication of the host storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_GZRS'

@description('Spread the plan\'s instances over availability zones (regions with zone support for Flex Consumption only; keeps at least two billed always-ready instances per function group).')
param zoneRedundant bool = false

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  storageQueueDataMessageProcessor: '8a0f0c08-91a1-4084-bc3d-661d67233fed'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var hasQueue = !empty(triggerQueueName)
var deploymentContainerName = 'app-package'
var vaultUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/'


resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// ---- host storage ---------------------------------------------------------------------------

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is computed in main.bicep ('st' + up to 10 + 2 + 8 lowercase letters and digits, at most 22 characters); checkov cannot evaluate it
  // checkov:skip=CKV_AZURE_35: no virtual network in this deployment: the Flex app reaches its host storage over the public endpoint, authenticated by Entra ID (shared keys disabled); see infra/checkov-skips.md
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: public endpoint with Entra ID only, no anonymous or key access
  name: hostStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource hostBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostStorage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostQueueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: hostStorage
  name: 'default'
}

resource triggerQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = if (hasQueue) {
  parent: hostQueueService
  name: hasQueue ? triggerQueueName : 'unused'
}

// Created up front so the host only ever needs to send to it: after maxDequeueCount failed
// attempts it moves the message here.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = if (hasQueue) {
  parent: hostQueueService
  name: hasQueue ? '${triggerQueueName}-poison' : 'unused-poison'
}

// ---- the identity's rights on this app's own resources --------------------------------------

// Functions host: leases (azure-webjobs-hosts), function keys (azure-webjobs-secrets) and the
// deployment package. The account holds nothing else.
resource hostBlobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identityPrincipalId, roles.storageBlobDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'patchwatch ${handler}: Functions host storage and deployment package (this app\'s own account)'
  }
}

resource queueReadAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasQueue) {
  name: guid(triggerQueue.id, identityPrincipalId, roles.storageQueueDataReader)
  scope: triggerQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'patchwatch ${handler}: queueTrigger peeks and measures the queue (scaling)'
  }
}

resource queueProcessAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasQueue) {
  name: guid(triggerQueue.id, identityPrincipalId, roles.storageQueueDataMessageProcessor)
  scope: triggerQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageProcessor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'patchwatch ${handler}: queueTrigger receives and deletes messages'
  }
}

resource poisonSendAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasQueue) {
  name: guid(poisonQueue.id, identityPrincipalId, roles.storageQueueDataMessageSender)
  scope: poisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'patchwatch ${handler}: queueTrigger moves a message that failed maxDequeueCount times to the poison queue'
  }
}

// The reminders timer peeks (never dequeues) the poison queue to report what was never
// processed (PATCHWATCH_POISON_QUEUE).
resource poisonPeekAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasQueue) {
  name: guid(poisonQueue.id, identityPrincipalId, roles.storageQueueDataReader)
  scope: poisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'patchwatch ${handler}: the reminders timer peeks the poison queue and reports what was never processed'
  }
}

resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    description: 'patchwatch ${handler}: send telemetry to Application Insights (local auth disabled)'
  }
}

resource secretResources 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [
  for s in secrets: {
    parent: vault
    name: s.secret
  }
]

resource secretAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (s, i) in secrets: {
    name: guid(secretResources[i].id, identityPrincipalId, roles.keyVaultSecretsUser)
    scope: secretResources[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
      principalId: identityPrincipalId
      principalType: 'ServicePrincipal'
      description: 'patchwatch ${handler}: Key Vault reference for ${s.env}'
    }
  }
]

// ---- the app --------------------------------------------------------------------------------

var baseSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: hostStorage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

var plainSettings = [
  for s in items(settings): {
    name: s.key
    value: s.value
  }
]

var secretSettings = [
  for s in secrets: {
    name: s.env
    value: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${s.secret}/)'
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is opt-in (zoneRedundant): on Flex it keeps at least two always-ready instances per function group, billed around the clock, while every sender retries for up to 24 hours anyway
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the app is a webhook receiver for Event Grid, Azure Monitor action groups and ITSM systems on the internet; requests are authenticated by the handlers (bearer token, HMAC / Standard Webhooks, function key)
  // checkov:skip=CKV_AZURE_17: none of those senders can present a client certificate
  // checkov:skip=CKV_AZURE_212: Flex Consumption has no worker count; it scales from zero and the senders retry (Event Grid, queue, action group)
  // checkov:skip=CKV_AZURE_213: App Service health check is not available on Flex Consumption; GET /api/health exists for external probes
  name: name
  location: location
  tags: union(tags, {
    'patchwatch-handler': handler
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: []
      }
      appSettings: concat(baseSettings, plainSettings, secretSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: runtimeVersion
      }
    }
  }
  // The host reads its storage and resolves the Key Vault references at start-up: grant first.
  dependsOn: [
    deploymentContainer
    hostBlobAccess
    queueReadAccess
    queueProcessAccess
    poisonSendAccess
    telemetryAccess
    secretAccess
  ]
}

// No publishing with user names and passwords: deployments authenticate with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Function App name.')
output name string = site.name

@description('Function App resource id.')
output id string = site.id

@description('Default host name, <name>.azurewebsites.net.')
output defaultHostName string = site.properties.defaultHostName

@description('Host storage account name.')
output hostStorageName string = hostStorage.name

@description('Host storage account resource id.')
output hostStorageId string = hostStorage.id
