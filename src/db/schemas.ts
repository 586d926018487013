/**
 * The schemas dpgc itself creates in the application databases: its ledgers
 * (migrations, drill log, replication probes) and the failover drills'
 * writes. They are dpgc's, not the application's: no application role is
 * granted anything in them, and the privilege check does not look there.
 */
export const LEDGER_SCHEMA = 'dpgc';
export const DRILL_SCHEMA = 'dpgc_drill';
export const DPGC_SCHEMAS: readonly string[] = [LEDGER_SCHEMA, DRILL_SCHEMA];
