// The event subscription on one maintenance configuration's system topic: pre and post
// maintenance events only, delivered to the events app's storage queue (default) or straight to
// its eventGridTrigger function, with dead letters in a blob container.
targetScope = 'resourceGroup'

@description('System topic name (in this resource group).')
param systemTopicName string

@description('Event subscription name.')
param name string = 'patchwatch'

@description('StorageQueue: the events app\'s queue, written with the topic\'s identity. AzureFunction: the app\'s maintenance-event function.')
@allowed([
  'StorageQueue'
  'AzureFunction'
])
param delivery string

@description('Resource id of the storage account holding the queue (StorageQueue delivery).')
param queueStorageAccountId string

@description('Queue name (StorageQueue delivery).')
param queueName string

@description('Resource id of the eventGridTrigger function, <function app id>/functions/maintenance-event (AzureFunction delivery).')
param functionResourceId string

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
    destination: useQueue ? null : functionDestination
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
