// The Event Grid system topic of one maintenance configuration. Deployed in the configuration's
// own resource group and region, which Event Grid requires for a system topic.
targetScope = 'resourceGroup'

@description('Name of the maintenance configuration (in this resource group).')
param maintenanceConfigurationName string

@description('System topic name. A configuration can have only one system topic: reuse the existing one\'s name if there is one.')
param systemTopicName string

@description('Tags applied to the topic.')
param tags object = {}

resource configuration 'Microsoft.Maintenance/maintenanceConfigurations@2023-04-01' existing = {
  name: maintenanceConfigurationName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: configuration.location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: configuration.id
    topicType: 'Microsoft.Maintenance.MaintenanceConfigurations'
  }
}

@description('Principal id of the topic\'s system-assigned identity (delivers to the queue, writes dead letters).')
output principalId string = topic.identity.principalId

@description('System topic resource id.')
output id string = topic.id
