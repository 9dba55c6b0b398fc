/**
 * A model file as a Civitai-compatible registry lists it: what the registry client reads and the file
 * inspection downloads.
 */
export interface RegistryFile {
  readonly name: string;
  readonly sizeBytes: number;
  /** Civitai's `metadata.format`: `SafeTensor`, `PickleTensor`, `Other`, …; `Other` when absent. */
  readonly format: string;
  /** Lower-case hex; undefined when the registry gave none or gave something that is not a SHA-256. */
  readonly sha256: string | undefined;
  readonly downloadUrl: string;
  readonly primary: boolean;
  /** `Pending`, `Success`, `Danger`, `Error`; `Pending` when absent (not scanned yet). */
  readonly pickleScan: string;
  readonly virusScan: string;
}
