/** quantc's version: printed by `--version` and recorded in saved plans (a test keeps it equal to package.json). */
export const QUANTC_VERSION = '0.1.0';
