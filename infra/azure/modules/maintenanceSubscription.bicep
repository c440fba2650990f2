// The event subscription on one maintenance configuration's system topic: pre and post
// maintenance events only, delivered to the events app's storage queue (default), straight to
// its eventGridTrigger function, or to its /api/events webhook (optionally with an Entra ID
// bearer token on every delivery), with dead letters in a blob container.
targetScope = 'resourceGroup'

@description('System topic name (in this resource group).')
param systemTopicName string

@description('Event subscription name.')
param name string = 'patchwatch'

@description('StorageQueue: the events app\'s queue, written with the topic\'s identity. AzureFunction: the app\'s maintenance-event function. WebHook: the app\'s /api/events route (webhookUrl).')
@allowed([
  'StorageQueue'
  'AzureFunction'
  'WebHook'
])
param delivery string

@description('Resource id of the storage account holding the queue (StorageQueue delivery).')
param queueStorageAccountId string

@description('Queue name (StorageQueue delivery).')
param queueName string

@description('Resource id of the eventGridTrigger function, <function app id>/functions/maintenance-event (AzureFunction delivery).')
param functionResourceId string

@description('WebHook delivery: the full endpoint URL, function key included (?code=...). Event Grid keeps the URL secret (endpointUrl is write-only).')
@secure()
param webhookUrl string = ''

@description('WebHook delivery with Entra ID: tenant id of the webhook\'s app registration. With entraApplicationIdOrUri, Event Grid sends a Microsoft Entra ID bearer token on every delivery. Empty: no token.')
param entraTenantId string = ''

@description('WebHook delivery with Entra ID: application (client) id or application ID URI of the webhook\'s app registration (the token\'s audience; PATCHWATCH_EVENTS_AUDIENCE on the app). Empty: no token.')
param entraApplicationIdOrUri string = ''

@description('Resource id of the storage account holding the dead-letter container.')
param deadLetterStorageAccountId string

@description('Dead-letter blob container name.')
param deadLetterContainerName string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

var useQueue = delivery == 'StorageQueue'

var queueDelivery = {
  identity: {
    type: 'SystemAssigned'
  }
  destination: {
    endpointType: 'StorageQueue'
    properties: {
      resourceId: queueStorageAccountId
      queueName: queueName
      // -1: the message never expires; the queue's retries (maxDequeueCount) decide.
      queueMessageTimeToLiveInSeconds: -1
    }
  }
}

// AzureFunction delivery authenticates with the function's system key, not an identity.
var functionDestination = {
  endpointType: 'AzureFunction'
  properties: {
    resourceId: functionResourceId
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

// WebHook delivery authenticates with the function key in the URL and, when both Entra values
// are given, an Entra ID token for the application (WebHookEventSubscriptionDestinationProperties
// azureActiveDirectoryTenantId / azureActiveDirectoryApplicationIdOrUri, api-version 2022-06-15).
var useEntra = !empty(entraTenantId) && !empty(entraApplicationIdOrUri)
var entraProperties = useEntra ? {
  azureActiveDirectoryTenantId: entraTenantId
  azureActiveDirectoryApplicationIdOrUri: entraApplicationIdOrUri
} : {}
var webhookProperties = {
  endpointUrl: webhookUrl
  maxEventsPerBatch: 1
  preferredBatchSizeInKilobytes: 64
}
var webhookDestination = {
  endpointType: 'WebHook'
  properties: union(webhookProperties, entraProperties)
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: name
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Maintenance.PreMaintenanceEvent'
        'Microsoft.Maintenance.PostMaintenanceEvent'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deliveryWithResourceIdentity: useQueue ? queueDelivery : null
    destination: useQueue ? null : (delivery == 'WebHook' ? webhookDestination : functionDestination)
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

@description('Event subscription resource id.')
output id string = eventSubscription.id
