// patchwatch's custom roles, defined in the deployment's subscription and assignable at the
// scopes the handlers work on. Each role holds only the actions of the ARM calls listed for it in
// infra/README.md; reads the handlers also need (Resource Graph, machine properties) come from
// the built-in Reader role.
targetScope = 'subscription'

@description('Distinguishes these roles from another patchwatch deployment\'s in the same tenant (role names are unique per tenant).')
param label string

@description('Resource group ids holding the maintenance configurations (run control, configuration reader).')
param configurationScopes array

@description('Subscription and resource group ids holding the machines (power control, patch on demand).')
param machineScopes array

@description('Subscription ids (/subscriptions/<id>) of the machines: the status of long-running operations lives at subscription level.')
param operationStatusScopes array

@description('Resource group ids where the events app creates and deletes alert processing rules ([suppress_alerts]); empty: the role is not created.')
param alertRuleScopes array = []

var definitions = {
  runControl: {
    roleName: 'patchwatch run control (${label})'
    description: 'patchwatch events app: read maintenance configurations and their runs, cancel a scheduled run when a gate fails (PUT applyUpdates with status Cancel).'
    actions: [
      'Microsoft.Maintenance/maintenanceConfigurations/read'
      'Microsoft.Maintenance/applyUpdates/read'
      'Microsoft.Maintenance/applyUpdates/write'
    ]
    scopes: configurationScopes
  }
  configurationReader: {
    roleName: 'patchwatch configuration reader (${label})'
    description: 'patchwatch itsm app: read maintenance configurations (their installPatches settings) and their runs.'
    actions: [
      'Microsoft.Maintenance/maintenanceConfigurations/read'
      'Microsoft.Maintenance/applyUpdates/read'
    ]
    scopes: configurationScopes
  }
  powerControl: {
    roleName: 'patchwatch power control (${label})'
    description: 'patchwatch events app: start deallocated or stopped VMs before a run and return exactly those to that state after it.'
    actions: [
      'Microsoft.Compute/virtualMachines/read'
      'Microsoft.Compute/virtualMachines/start/action'
      'Microsoft.Compute/virtualMachines/deallocate/action'
      'Microsoft.Compute/virtualMachines/powerOff/action'
    ]
    scopes: machineScopes
  }
  patchOnDemand: {
    roleName: 'patchwatch patch on demand (${label})'
    description: 'patchwatch itsm app: install patches now on Azure VMs and Arc-enabled servers (re-run failed machines, emergency patching).'
    actions: [
      'Microsoft.Compute/virtualMachines/installPatches/action'
      'Microsoft.HybridCompute/machines/installPatches/action'
    ]
    scopes: machineScopes
  }
  operationStatus: {
    roleName: 'patchwatch operation status (${label})'
    description: 'patchwatch itsm app: poll its installPatches operations (the Location URL of the 202), which live at subscription level.'
    actions: [
      'Microsoft.Compute/locations/operations/read'
      'Microsoft.HybridCompute/locations/operationresults/read'
      'Microsoft.HybridCompute/locations/updateCenterOperationResults/read'
    ]
    scopes: operationStatusScopes
  }
  quietDuringPatching: {
    roleName: 'patchwatch quiet during patching (${label})'
    description: 'patchwatch events app: create an alert processing rule that mutes a run\'s machines for its window (PUT actionRules) and delete it after the run.'
    actions: [
      'Microsoft.AlertsManagement/actionRules/write'
      'Microsoft.AlertsManagement/actionRules/delete'
    ]
    scopes: alertRuleScopes
  }
}

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = [
  for d in items(definitions): if (!empty(d.value.scopes)) {
    name: guid(subscription().id, 'patchwatch', d.key, label)
    properties: {
      roleName: d.value.roleName
      description: d.value.description
      type: 'CustomRole'
      permissions: [
        {
          actions: d.value.actions
          notActions: []
          dataActions: []
          notDataActions: []
        }
      ]
      assignableScopes: d.value.scopes
    }
  }
]

@description('Role definition GUIDs by key; empty where the role was not needed.')
output ids object = {
  runControl: guid(subscription().id, 'patchwatch', 'runControl', label)
  configurationReader: guid(subscription().id, 'patchwatch', 'configurationReader', label)
  powerControl: guid(subscription().id, 'patchwatch', 'powerControl', label)
  patchOnDemand: guid(subscription().id, 'patchwatch', 'patchOnDemand', label)
  operationStatus: guid(subscription().id, 'patchwatch', 'operationStatus', label)
  quietDuringPatching: guid(subscription().id, 'patchwatch', 'quietDuringPatching', label)
}
