import type { CheckDefinition } from './service-definition.js';

// Maintenance mode as a Consul agent keeps it: a critical check of type "maintenance" on the
// node or on one service, whose Notes hold the reason; while it is there, every instance it
// covers is critical, so discovery (health/service?passing) stops sending traffic there.

/** The id of the node's maintenance check (Consul's structs.NodeMaint). */
export const nodeMaintenanceId = '_node_maintenance';

/** The id of a service's maintenance check (Consul's serviceMaintCheckID). */
export function serviceMaintenanceId(serviceId: string): string {
  return `_service_maintenance:${serviceId}`;
}

// Consul's notes when no reason is given.
const defaultNodeReason =
  'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';
const defaultServiceReason =
  'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

/**
 * The check that puts the node in maintenance, with `reason` (or Consul's default) as Notes.
 * @example
 * catalog.registerCheck(nodeMaintenanceCheck('kernel upgrade'), undefined);
 */
export function nodeMaintenanceCheck(reason: string): CheckDefinition {
  return maintenanceCheck(nodeMaintenanceId, 'Node Maintenance Mode', reason || defaultNodeReason);
}

/**
 * The check that puts one service instance in maintenance.
 * @example
 * catalog.registerCheck(serviceMaintenanceCheck('users-1', 'draining'), 'users-1');
 */
export function serviceMaintenanceCheck(serviceId: string, reason: string): CheckDefinition {
  return maintenanceCheck(serviceMaintenanceId(serviceId), 'Service Maintenance Mode', reason || defaultServiceReason);
}

function maintenanceCheck(id: string, name: string, notes: string): CheckDefinition {
  return {
    id,
    name,
    notes,
    ttlMs: undefined,
    http: undefined,
    status: 'critical',
    deregisterCriticalAfterMs: undefined,
    maintenance: true,
  };
}
