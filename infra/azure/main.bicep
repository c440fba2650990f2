// patchwatch on Azure: three Flex Consumption Function Apps (custom handler, one per handler
// binary), each with its own user-assigned identity; a Key Vault for their secrets; a storage
// account for the delivery ledger (PATCHWATCH_STATE) and Event Grid dead letters; Event Grid
// system topics on the maintenance configurations feeding the events app's queue; an action group
// and activity-log alerts feeding the alert app; and least-privilege role assignments, each
// justified by an API call in infra/README.md.
//
// Deploy with: az deployment group create -g <rg> -f infra/azure/main.bicep -p @infra/azure/main.parameters.json -p alertWebhookToken=...

targetScope = 'resourceGroup'

// ---- parameters -----------------------------------------------------------------------------

@description('Region of the apps, storage, Key Vault and monitoring. Event Grid system topics go to each maintenance configuration\'s own region.')
param location string = resourceGroup().location

@description('Prefix of every resource name: 3 to 11 lowercase letters, digits or hyphens.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'patchwatch'

@description('Tags applied to every resource.')
param tags object = {}

@description('Resource ids of the maintenance configurations whose pre and post maintenance events patchwatch handles. They may live in other resource groups and subscriptions; each gets an Event Grid system topic in its own resource group.')
param maintenanceConfigurationIds array = []

@description('Existing system topic names, by maintenance configuration name. A configuration has at most one system topic: name it here if the portal already created one (for example for pre/post events), otherwise "<configuration>-patchwatch" is created.')
param existingSystemTopicNames object = {}

@description('Where Event Grid delivers the events: StorageQueue (the events app\'s maintenance-events queue, read by the maintenance-queue function; recommended, the queue does the waiting), AzureFunction (the maintenance-event eventGridTrigger function; deploy the code first, the function must exist) or WebHook (the events app\'s /api/events route with eventsFunctionKey, and an Entra ID token when eventsEntraApplicationIdOrUri is set; deploy the code first).')
@allowed([
  'StorageQueue'
  'AzureFunction'
  'WebHook'
])
param eventDelivery string = 'StorageQueue'

@description('Entra ID delivery (with eventDelivery = WebHook): application (client) id or application ID URI of the app registration that protects the events webhook. Sets PATCHWATCH_EVENTS_AUDIENCE on the events app and makes Event Grid send a bearer token for it on every delivery. Empty: off.')
param eventsEntraApplicationIdOrUri string = ''

@description('Entra ID delivery: tenant id of that app registration (PATCHWATCH_EVENTS_TENANT). Empty: this deployment\'s tenant.')
param eventsEntraTenantId string = ''

@description('WebHook delivery: the key of the events app\'s "events" function (authLevel function), appended to the subscription\'s URL as ?code=... (az functionapp function keys list after the code is deployed). Event Grid keeps the URL secret.')
@secure()
param eventsFunctionKey string = ''

@description('Subscription ids whose machines patchwatch reports on and acts on (Reader for Resource Graph; power control; patch on demand).')
param machineSubscriptionIds array = []

@description('Resource groups whose machines patchwatch reports on and acts on, when whole subscriptions are too broad: [{ subscriptionId, resourceGroup }].')
param machineResourceGroups array = []

@description('Resource groups holding the maintenance configurations (read them, cancel their runs): [{ subscriptionId, resourceGroup }].')
param configurationResourceGroups array = []

@description('Quiet during patching ([suppress_alerts].resource_groups): the resource groups the events app creates and deletes alert processing rules in, one per subscription: [{ subscriptionId, resourceGroup }]. Empty: no rights are granted.')
param suppressAlertsResourceGroups array = []

@description('PATCHWATCH_CONFIG: path of the routing/gates file shipped in the package, relative to the app root. Empty: not set (every summary goes by email to PATCHWATCH_MAIL_TO).')
param configFile string = 'patchwatch.toml'

@description('PATCHWATCH_MAIL_FROM (sender). Empty: not set.')
param mailFrom string = ''

@description('PATCHWATCH_MAIL_TO (default recipients, comma-separated). Empty: not set.')
param mailTo string = ''

@description('PATCHWATCH_REPORT_SCHEDULE: when the compliance-report timer sends the weekly digest, as an NCRONTAB expression in UTC (six fields: second minute hour day month day-of-week). Default: Mondays 07:00 UTC.')
param reportSchedule string = '0 0 7 * * Mon'

@description('PATCHWATCH_REMINDER_SCHEDULE: when the reminders timer follows up failed runs nobody owns (reminders, escalations), as an NCRONTAB expression in UTC. Default: every 15 minutes.')
param reminderSchedule string = '0 */15 * * * *'

@description('More non-secret app settings for all three apps, e.g. { "PATCHWATCH_RESULT_GRACE_MINUTES": "20" }.')
param additionalSettings object = {}

@description('Secrets of the events app: environment variable -> Key Vault secret name. Each secret must exist in the vault (write it with secretValues or az keyvault secret set before deploying).')
param eventsSecretEnv object = {
  PATCHWATCH_SMTP_URL: 'patchwatch-smtp-url'
}

@description('Secrets of the alert-webhook app: environment variable -> Key Vault secret name. PATCHWATCH_ALERT_TOKEN is added from alertWebhookToken.')
param alertsSecretEnv object = {
  PATCHWATCH_SMTP_URL: 'patchwatch-smtp-url'
}

@description('Secrets of the itsm-webhook app: environment variable -> Key Vault secret name (the ITSM callers\' signing_secret_env / bearer_env, ServiceNow user and password).')
param itsmSecretEnv object = {
  PATCHWATCH_SMTP_URL: 'patchwatch-smtp-url'
}

@description('Token the action group appends to the alert app\'s URL (?token=...) and the app checks (PATCHWATCH_ALERT_TOKEN). At least 32 characters; URL-safe characters only. Never an output.')
@secure()
@minLength(32)
param alertWebhookToken string

@description('Optional function key for the alerts app\'s "alerts" function, appended to the action group\'s URI as &code=... Needed only while that function\'s authLevel is "function" (az functionapp function keys list after the code is deployed, then redeploy); the handler itself checks the token.')
@secure()
param alertsFunctionKey string = ''

@description('Secret values to write to the Key Vault: secret name -> value (for example { "patchwatch-smtp-url": "smtp://..." }). Optional: secrets can be written beforehand with az keyvault secret set instead.')
@secure()
param secretValues object = {}

@description('Flex Consumption runtime version of the "custom" stack (az functionapp list-flexconsumption-runtimes --location <region> --runtime custom).')
param runtimeVersion string = '1.0'

@description('Upper bound of instances each app scales out to.')
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

@description('Replication of the storage accounts.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_GZRS'

@description('Spread each Flex Consumption plan over availability zones (az functionapp list-flexconsumption-locations --zone-redundant true lists the regions). Costs: the platform then keeps at least two always-ready instances per function group.')
param zoneRedundant bool = false

@description('Days Log Analytics keeps logs and telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

// ---- names and constants --------------------------------------------------------------------

var prefix = toLower(namePrefix)
var compact = take(replace(prefix, '-', ''), 10)
var suffix = uniqueString(resourceGroup().id, prefix)

var names = {
  workspace: 'log-${prefix}-${take(suffix, 6)}'
  insights: 'appi-${prefix}-${take(suffix, 6)}'
  vault: 'kv-${compact}-${take(suffix, 8)}'
  dataStorage: 'st${compact}d${take(suffix, 8)}'
  events: '${prefix}-events-${take(suffix, 6)}'
  alerts: '${prefix}-alerts-${take(suffix, 6)}'
  itsm: '${prefix}-itsm-${take(suffix, 6)}'
  eventsStorage: 'st${compact}ev${take(suffix, 8)}'
  alertsStorage: 'st${compact}al${take(suffix, 8)}'
  itsmStorage: 'st${compact}it${take(suffix, 8)}'
  actionGroup: 'ag-${prefix}-alerts'
}

var stateContainerName = 'patchwatch-state'
var deadLetterContainerName = 'eventgrid-deadletter'
var eventQueueName = 'maintenance-events'
var alertTokenSecretName = 'patchwatch-alert-token'

// Built-in role definition ids (GUIDs).
var roles = {
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
}

// ---- monitoring -----------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: names.workspace
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: names.insights
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

// ---- secrets --------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no virtual network in this deployment: App Service resolves Key Vault references over the public endpoint; access is RBAC, per secret
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109
  name: names.vault
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource vaultLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'patchwatch-audit'
  scope: vault
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

resource alertTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry: should Key Vault ever refuse an expired secret, App Service would hand the app the literal reference text instead of the token; rotate by redeploying with a new token
  parent: vault
  name: alertTokenSecretName
  properties: {
    value: alertWebhookToken
    contentType: 'text/plain'
  }
}

resource providedSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for s in items(secretValues): {
    // checkov:skip=CKV_AZURE_41: no expiry, as for alertTokenSecret: rotation is az keyvault secret set (or a redeploy), not expiry
    parent: vault
    name: s.key
    properties: {
      value: s.value
      contentType: 'text/plain'
    }
  }
]

// ---- state and dead letters -----------------------------------------------------------------

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is computed ('st' + up to 10 + 'd' + 8 lowercase letters and digits, at most 21 characters); checkov cannot evaluate it
  // checkov:skip=CKV_AZURE_35: no virtual network in this deployment: the Flex apps reach the state container over the public endpoint, authenticated by Entra ID (shared keys disabled); Event Grid writes with its identity as a trusted service
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: public endpoint with Entra ID only, no anonymous or key access
  name: names.dataStorage
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

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: dataStorage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 14
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 14
    }
  }
}

resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: dataBlobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: dataBlobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Who wrote or deleted which ledger entry or dead letter (reads are too many to be worth keeping).
resource dataBlobLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'patchwatch-writes'
  scope: dataBlobService
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

// ---- identities and apps --------------------------------------------------------------------

resource eventsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${names.events}'
  location: location
  tags: tags
}

resource alertsIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${names.alerts}'
  location: location
  tags: tags
}

resource itsmIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${names.itsm}'
  location: location
  tags: tags
}

var stateUrl = 'https://${names.dataStorage}.blob.${environment().suffixes.storage}/${stateContainerName}'
var stateSetting = {
  PATCHWATCH_STATE: stateUrl
}
var configSetting = empty(configFile) ? {} : {
  PATCHWATCH_CONFIG: configFile
}
var mailFromSetting = empty(mailFrom) ? {} : {
  PATCHWATCH_MAIL_FROM: mailFrom
}
var mailToSetting = empty(mailTo) ? {} : {
  PATCHWATCH_MAIL_TO: mailTo
}
var commonSettings = union(stateSetting, configSetting, mailFromSetting, mailToSetting, additionalSettings)
var eventsEntraTenant = empty(eventsEntraTenantId) ? subscription().tenantId : eventsEntraTenantId
var eventsEntraSettings = empty(eventsEntraApplicationIdOrUri) ? {} : {
  PATCHWATCH_EVENTS_AUDIENCE: eventsEntraApplicationIdOrUri
  PATCHWATCH_EVENTS_TENANT: eventsEntraTenant
}

// Module input: [{ env, secret }], from the "environment variable -> secret name" parameters.
var alertTokenEnv = {
  PATCHWATCH_ALERT_TOKEN: alertTokenSecretName
}
var eventsSecrets = [
  for s in items(eventsSecretEnv): {
    env: s.key
    secret: s.value
  }
]
var alertsSecrets = [
  for s in items(union(alertsSecretEnv, alertTokenEnv)): {
    env: s.key
    secret: s.value
  }
]
var itsmSecrets = [
  for s in items(itsmSecretEnv): {
    env: s.key
    secret: s.value
  }
]

module eventsApp 'modules/functionApp.bicep' = {
  name: 'pw-${prefix}-app-events'
  params: {
    name: names.events
    handler: 'events'
    location: location
    tags: tags
    identityId: eventsIdentity.id
    identityClientId: eventsIdentity.properties.clientId
    identityPrincipalId: eventsIdentity.properties.principalId
    hostStorageName: names.eventsStorage
    triggerQueueName: eventQueueName
    applicationInsightsName: insights.name
    keyVaultName: vault.name
    secrets: eventsSecrets
    settings: union(commonSettings, eventsEntraSettings, {
      PATCHWATCH_REPORT_SCHEDULE: reportSchedule
      PATCHWATCH_REMINDER_SCHEDULE: reminderSchedule
      PATCHWATCH_POISON_QUEUE: 'https://${names.eventsStorage}.queue.${environment().suffixes.storage}/${eventQueueName}-poison'
      PATCHWATCH_DEADLETTER_CONTAINER: 'https://${names.dataStorage}.blob.${environment().suffixes.storage}/${deadLetterContainerName}'
    })
    runtimeVersion: runtimeVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    storageSku: storageSku
    zoneRedundant: zoneRedundant
  }
  dependsOn: [
    alertTokenSecret
    providedSecrets
  ]
}

module alertsApp 'modules/functionApp.bicep' = {
  name: 'pw-${prefix}-app-alerts'
  params: {
    name: names.alerts
    handler: 'alerts'
    location: location
    tags: tags
    identityId: alertsIdentity.id
    identityClientId: alertsIdentity.properties.clientId
    identityPrincipalId: alertsIdentity.properties.principalId
    hostStorageName: names.alertsStorage
    applicationInsightsName: insights.name
    keyVaultName: vault.name
    secrets: alertsSecrets
    settings: commonSettings
    runtimeVersion: runtimeVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    storageSku: storageSku
    zoneRedundant: zoneRedundant
  }
  dependsOn: [
    alertTokenSecret
    providedSecrets
  ]
}

module itsmApp 'modules/functionApp.bicep' = {
  name: 'pw-${prefix}-app-itsm'
  params: {
    name: names.itsm
    handler: 'itsm'
    location: location
    tags: tags
    identityId: itsmIdentity.id
    identityClientId: itsmIdentity.properties.clientId
    identityPrincipalId: itsmIdentity.properties.principalId
    hostStorageName: names.itsmStorage
    applicationInsightsName: insights.name
    keyVaultName: vault.name
    secrets: itsmSecrets
    settings: commonSettings
    runtimeVersion: runtimeVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    storageSku: storageSku
    zoneRedundant: zoneRedundant
  }
  dependsOn: [
    alertTokenSecret
    providedSecrets
  ]
}

// Every app keeps its ledger in the state container, and nothing else of the data account.
module stateAccess 'modules/storageRoles.bicep' = {
  name: 'pw-${prefix}-state-access'
  params: {
    containerAssignments: [
      {
        storageAccountName: dataStorage.name
        containerName: stateContainer.name
        principalId: eventsIdentity.properties.principalId
        roleDefinitionId: roles.storageBlobDataContributor
        description: 'patchwatch events: delivery ledger and run history (PATCHWATCH_STATE)'
      }
      {
        storageAccountName: dataStorage.name
        containerName: stateContainer.name
        principalId: alertsIdentity.properties.principalId
        roleDefinitionId: roles.storageBlobDataContributor
        description: 'patchwatch alerts: delivery ledger (PATCHWATCH_STATE)'
      }
      {
        storageAccountName: dataStorage.name
        containerName: stateContainer.name
        principalId: itsmIdentity.properties.principalId
        roleDefinitionId: roles.storageBlobDataContributor
        description: 'patchwatch itsm: delivery ledger, approvals and run data (PATCHWATCH_STATE)'
      }
      {
        storageAccountName: dataStorage.name
        containerName: deadLetterContainer.name
        principalId: eventsIdentity.properties.principalId
        roleDefinitionId: roles.storageBlobDataReader
        description: 'patchwatch events: the reminders timer lists dead-lettered events and reports them (PATCHWATCH_DEADLETTER_CONTAINER)'
      }
    ]
  }
}

// ---- Event Grid: maintenance configurations -> events app -----------------------------------

var topicTargets = [
  for id in maintenanceConfigurationIds: {
    subscriptionId: split(id, '/')[2]
    resourceGroup: split(id, '/')[4]
    configurationName: last(split(id, '/'))
    topicName: contains(existingSystemTopicNames, last(split(id, '/'))) ? existingSystemTopicNames[last(split(id, '/'))] : '${last(split(id, '/'))}-patchwatch'
  }
]

module topics 'modules/maintenanceTopic.bicep' = [
  for (t, i) in topicTargets: {
    name: 'pw-${prefix}-topic-${i}'
    scope: resourceGroup(t.subscriptionId, t.resourceGroup)
    params: {
      maintenanceConfigurationName: t.configurationName
      systemTopicName: t.topicName
      tags: tags
    }
  }
]

var useQueue = eventDelivery == 'StorageQueue'
var eventsCode = empty(eventsFunctionKey) ? '' : '?code=${uriComponent(eventsFunctionKey)}'

// The topics' identities: send to the queue only (StorageQueue delivery), write dead letters to
// the dead-letter container only.
module deliveryAccess 'modules/storageRoles.bicep' = {
  name: 'pw-${prefix}-delivery-access'
  params: {
    containerAssignments: [
      for (t, i) in topicTargets: {
        storageAccountName: dataStorage.name
        containerName: deadLetterContainer.name
        principalId: topics[i].outputs.principalId
        roleDefinitionId: roles.storageBlobDataContributor
        description: 'patchwatch: Event Grid system topic ${t.topicName} writes undeliverable events'
      }
    ]
    queueAssignments: [
      for (t, i) in (useQueue ? topicTargets : []): {
        storageAccountName: names.eventsStorage
        queueName: eventQueueName
        principalId: topics[i].outputs.principalId
        roleDefinitionId: roles.storageQueueDataMessageSender
        description: 'patchwatch: Event Grid system topic ${t.topicName} delivers maintenance events'
      }
    ]
  }
  dependsOn: [
    eventsApp
  ]
}

module eventSubscriptions 'modules/maintenanceSubscription.bicep' = [
  for (t, i) in topicTargets: {
    name: 'pw-${prefix}-eventsub-${i}'
    scope: resourceGroup(t.subscriptionId, t.resourceGroup)
    params: {
      systemTopicName: t.topicName
      name: '${prefix}-maintenance'
      delivery: eventDelivery
      queueStorageAccountId: eventsApp.outputs.hostStorageId
      queueName: eventQueueName
      functionResourceId: '${eventsApp.outputs.id}/functions/maintenance-event'
      webhookUrl: 'https://${eventsApp.outputs.defaultHostName}/api/events${eventsCode}'
      entraTenantId: empty(eventsEntraApplicationIdOrUri) ? '' : eventsEntraTenant
      entraApplicationIdOrUri: eventsEntraApplicationIdOrUri
      deadLetterStorageAccountId: dataStorage.id
      deadLetterContainerName: deadLetterContainer.name
    }
    dependsOn: [
      topics
      deliveryAccess
    ]
  }
]

// ---- ARM access: Reader and patchwatch's custom roles, at the narrowest scopes ---------------

var machineSubscriptionScopes = [for s in machineSubscriptionIds: '/subscriptions/${s}']
var machineResourceGroupScopes = [for r in machineResourceGroups: '/subscriptions/${r.subscriptionId}/resourceGroups/${r.resourceGroup}']
var machineResourceGroupSubscriptions = [for r in machineResourceGroups: r.subscriptionId]
var operationStatusSubscriptions = union(machineSubscriptionIds, machineResourceGroupSubscriptions)
var operationStatusScopes = [for s in operationStatusSubscriptions: '/subscriptions/${s}']
var configurationScopes = [for r in configurationResourceGroups: '/subscriptions/${r.subscriptionId}/resourceGroups/${r.resourceGroup}']
var alertRuleScopes = [for r in suppressAlertsResourceGroups: '/subscriptions/${r.subscriptionId}/resourceGroups/${r.resourceGroup}']

module roleDefinitions 'modules/roleDefinitions.bicep' = {
  name: 'pw-${prefix}-role-definitions'
  scope: subscription()
  params: {
    label: '${prefix}, ${resourceGroup().name}'
    configurationScopes: configurationScopes
    machineScopes: concat(machineSubscriptionScopes, machineResourceGroupScopes)
    operationStatusScopes: operationStatusScopes
    alertRuleScopes: alertRuleScopes
  }
}

var machineAssignments = [
  {
    principalId: eventsIdentity.properties.principalId
    roleDefinitionId: roles.reader
    description: 'patchwatch events: Resource Graph run data, action group channels'
  }
  {
    principalId: eventsIdentity.properties.principalId
    roleDefinitionId: roleDefinitions.outputs.ids.powerControl
    description: 'patchwatch events: start deallocated VMs before a run, deallocate them after'
  }
  {
    principalId: itsmIdentity.properties.principalId
    roleDefinitionId: roles.reader
    description: 'patchwatch itsm: Resource Graph run data for re-runs'
  }
  {
    principalId: itsmIdentity.properties.principalId
    roleDefinitionId: roleDefinitions.outputs.ids.patchOnDemand
    description: 'patchwatch itsm: installPatches on VMs and Arc servers (re-run failed, emergency patch)'
  }
]

module machineSubscriptionAccess 'modules/rbacSubscription.bicep' = [
  for (s, i) in machineSubscriptionIds: {
    name: 'pw-${prefix}-machines-${i}'
    scope: subscription(s)
    params: {
      assignments: machineAssignments
    }
  }
]

module machineResourceGroupAccess 'modules/rbacResourceGroup.bicep' = [
  for (r, i) in machineResourceGroups: {
    name: 'pw-${prefix}-machines-rg-${i}'
    scope: resourceGroup(r.subscriptionId, r.resourceGroup)
    params: {
      assignments: machineAssignments
    }
  }
]

module operationStatusAccess 'modules/rbacSubscription.bicep' = [
  for (s, i) in operationStatusSubscriptions: {
    name: 'pw-${prefix}-operations-${i}'
    scope: subscription(s)
    params: {
      assignments: [
        {
          principalId: itsmIdentity.properties.principalId
          roleDefinitionId: roleDefinitions.outputs.ids.operationStatus
          description: 'patchwatch itsm: poll its own installPatches operations'
        }
      ]
    }
  }
]

module configurationAccess 'modules/rbacResourceGroup.bicep' = [
  for (r, i) in configurationResourceGroups: {
    name: 'pw-${prefix}-configurations-${i}'
    scope: resourceGroup(r.subscriptionId, r.resourceGroup)
    params: {
      assignments: [
        {
          principalId: eventsIdentity.properties.principalId
          roleDefinitionId: roleDefinitions.outputs.ids.runControl
          description: 'patchwatch events: read configurations and runs, cancel a run when a gate fails'
        }
        {
          principalId: itsmIdentity.properties.principalId
          roleDefinitionId: roleDefinitions.outputs.ids.configurationReader
          description: 'patchwatch itsm: read configurations (installPatches settings for re-runs) and runs'
        }
      ]
    }
  }
]

module suppressAlertsAccess 'modules/rbacResourceGroup.bicep' = [
  for (r, i) in suppressAlertsResourceGroups: {
    name: 'pw-${prefix}-quiet-${i}'
    scope: resourceGroup(r.subscriptionId, r.resourceGroup)
    params: {
      assignments: [
        {
          principalId: eventsIdentity.properties.principalId
          roleDefinitionId: roleDefinitions.outputs.ids.quietDuringPatching
          description: 'patchwatch events: create and delete the alert processing rules that mute a run\'s machines'
        }
      ]
    }
  }
]

// ---- Azure Monitor: activity-log alerts -> action group -> alert app -----------------------

var alertsCode = empty(alertsFunctionKey) ? '' : '&code=${uriComponent(alertsFunctionKey)}'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: names.actionGroup
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'patchwatch'
    enabled: true
    webhookReceivers: [
      {
        name: 'patchwatch-alert-webhook'
        serviceUri: 'https://${alertsApp.outputs.defaultHostName}/api/alerts?token=${uriComponent(alertWebhookToken)}${alertsCode}'
        useCommonAlertSchema: true
        useAadAuth: false
      }
    ]
  }
}

var administrative = {
  field: 'category'
  equals: 'Administrative'
}

var watchedOperations = [
  {
    name: 'configuration-changed'
    description: 'A maintenance configuration was created or changed.'
    conditions: [
      administrative
      {
        field: 'operationName'
        equals: 'Microsoft.Maintenance/maintenanceConfigurations/write'
      }
    ]
  }
  {
    name: 'configuration-deleted'
    description: 'A maintenance configuration was deleted.'
    conditions: [
      administrative
      {
        field: 'operationName'
        equals: 'Microsoft.Maintenance/maintenanceConfigurations/delete'
      }
    ]
  }
  {
    name: 'assignment-changed'
    description: 'A machine or dynamic scope was assigned to a maintenance configuration.'
    conditions: [
      administrative
      {
        field: 'operationName'
        equals: 'Microsoft.Maintenance/configurationAssignments/write'
      }
    ]
  }
  {
    name: 'assignment-deleted'
    description: 'A configuration assignment was removed.'
    conditions: [
      administrative
      {
        field: 'operationName'
        equals: 'Microsoft.Maintenance/configurationAssignments/delete'
      }
    ]
  }
  {
    name: 'run-failed'
    description: 'A maintenance run (applyUpdates) failed.'
    conditions: [
      administrative
      {
        field: 'operationName'
        equals: 'Microsoft.Maintenance/applyUpdates/write'
      }
      {
        field: 'status'
        equals: 'Failed'
      }
    ]
  }
]

resource activityAlerts 'Microsoft.Insights/activityLogAlerts@2020-10-01' = [
  for op in watchedOperations: {
    name: '${prefix}-${op.name}'
    location: 'Global'
    tags: tags
    properties: {
      enabled: true
      description: 'patchwatch: ${op.description}'
      scopes: [
        subscription().id
      ]
      condition: {
        allOf: op.conditions
      }
      actions: {
        actionGroups: [
          {
            actionGroupId: actionGroup.id
          }
        ]
      }
    }
  }
]

// ---- outputs (no secrets) ------------------------------------------------------------------

@description('Function App names, for az functionapp deployment source config-zip.')
output appNames object = {
  events: eventsApp.outputs.name
  alerts: alertsApp.outputs.name
  itsm: itsmApp.outputs.name
}

@description('Public endpoints (without any token).')
output endpoints object = {
  events: 'https://${eventsApp.outputs.defaultHostName}/api/events'
  alerts: 'https://${alertsApp.outputs.defaultHostName}/api/alerts'
  itsm: 'https://${itsmApp.outputs.defaultHostName}/api/itsm'
}

@description('PATCHWATCH_STATE of every app.')
output stateContainerUrl string = stateUrl

@description('Key Vault holding the secrets the apps reference.')
output keyVaultName string = vault.name

@description('Client ids of the apps\' identities.')
output identityClientIds object = {
  events: eventsIdentity.properties.clientId
  alerts: alertsIdentity.properties.clientId
  itsm: itsmIdentity.properties.clientId
}
