import type { SshSettings } from '../config/schema.js';
import { HostError } from '../errors.js';
import { BaseHost, type BaseHostOptions, type RawResult, type RawRun } from './base.js';

export interface SshHostOptions extends BaseHostOptions {
  ssh: SshSettings;
  acceptNewHostKeys: boolean;
}

/** Placeholder: the ssh2 transport is being written. */
export class SshHost extends BaseHost {
  readonly transport = 'ssh';
  static async connect(o: SshHostOptions): Promise<SshHost> {
    throw new HostError(`${o.name}: the ssh transport is not implemented yet`);
  }
  protected async run(_r: RawRun): Promise<RawResult> {
    throw new Error('not implemented');
  }
  async close(): Promise<void> {}
}
