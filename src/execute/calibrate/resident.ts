/** How many hidden-state bytes calibration and eval keep resident between layers. */
import { totalmem } from 'node:os';

/**
 * Hidden states kept between layers, at most (bytes): a quarter of the
 * machine's memory, between 1 and 16 GiB. Longer data is run in chunks of
 * batches, each chunk through every layer: weights are read once per chunk,
 * activations never outgrow this bound. The bound is generous because each
 * extra chunk reads every weight again, which costs far more than holding
 * activations (llm-compressor's 512 × 384 default samples of a 7168-wide
 * model are 5.6 GB).
 */
export const MAX_RESIDENT_ACTIVATION_BYTES = Math.min(16 * 2 ** 30, Math.max(2 ** 30, Math.floor(totalmem() / 4)));
