/**
 * The devices `apply` runs on: `cpu`, or one or more CUDA devices by
 * ordinal (`cuda`, `cuda:1`, `cuda:0,1`, `--gpus N`). The data-free weight
 * pass spreads its tensors over them, the looped calibration passes their
 * batches; solves and searches run on the first.
 */
import type { Device } from './runtime.js';

/** One device of a list: its kind and, for CUDA, its ordinal (absent: the provider's default, 0). */
export interface DeviceSlot {
  readonly device: Device;
  readonly deviceId?: number;
}

/** A device string that is not a device list; the message is user-facing. */
export class DeviceListError extends Error {}

const ORDINAL = /^(0|[1-9]\d{0,2})$/;

/**
 * Parses `--device`: `cpu`, `cuda`, `cuda:N`, or CUDA ordinals separated by
 * commas (`cuda:0,1` or `cuda:0,cuda:1`), each at most once. `gpus` (from
 * `--gpus N`) stands for `cuda:0,…,N−1` and goes with `cuda` or no `--device`.
 */
export function parseDeviceList(text: string | undefined, gpusText?: string): DeviceSlot[] {
  const usage = 'must be cpu, cuda, cuda:N or a list of CUDA devices such as cuda:0,1';
  if (gpusText !== undefined) {
    const gpus = ORDINAL.test(gpusText) ? Number(gpusText) : 0;
    if (gpus < 1) throw new DeviceListError(`--gpus must be a positive number of GPUs, not "${gpusText}"`);
    if (text !== undefined && text !== 'cuda') throw new DeviceListError(`--gpus ${gpus} already names the devices (cuda:0 to cuda:${gpus - 1}); drop --device ${text}`);
    return Array.from({ length: gpus }, (_, i) => ({ device: 'cuda', deviceId: i }));
  }
  if (text === undefined || text === 'cpu') return [{ device: 'cpu' }];
  if (text === 'cuda') return [{ device: 'cuda' }];
  const m = /^cuda:(.+)$/.exec(text);
  if (!m) throw new DeviceListError(`--device ${usage}, not "${text}"`);
  const ids: number[] = [];
  for (const part of m[1]!.split(',')) {
    const id = part.startsWith('cuda:') ? part.slice(5) : part;
    if (!ORDINAL.test(id)) throw new DeviceListError(`--device ${usage}, not "${text}" ("${part}" is not a CUDA device ordinal)`);
    if (ids.includes(Number(id))) throw new DeviceListError(`--device names cuda:${id} twice in "${text}"`);
    ids.push(Number(id));
  }
  return ids.map((deviceId) => ({ device: 'cuda', deviceId }));
}

/** How a device list is written back (`cpu`, `cuda`, `cuda:0,1`). */
export function formatDeviceList(slots: readonly DeviceSlot[]): string {
  if (slots.length === 1 && slots[0]!.deviceId === undefined) return slots[0]!.device;
  if (slots.every((s) => s.device === 'cuda')) return `cuda:${slots.map((s) => s.deviceId ?? 0).join(',')}`;
  return slots.map((s) => (s.deviceId === undefined ? s.device : `${s.device}:${s.deviceId}`)).join(',');
}
