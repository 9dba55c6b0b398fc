import { writeFile } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where images of outputType URL live until clients fetch them. The interface is the seam for other
 * backends (an S3-compatible bucket is the scale-out option); the default is a directory, which replicas
 * share when it is a shared volume.
 */
export interface ImageStore {
  put(name: string, bytes: Uint8Array): Promise<void>;
  get(name: string): Promise<Uint8Array | undefined>;
  /** Deletes images stored longer ago than `maxAgeMs`; returns how many. Clients fetch results soon or never. */
  sweep(maxAgeMs: number): Promise<number>;
}

/** `{uuid}.{png|jpg|webp}`: the only names stored or served, so no path can leave the directory. */
export const imageNamePattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(png|jpg|webp)$/;

export function createDirectoryImageStore(directory: string): ImageStore {
  let ready: Promise<unknown> | undefined;
  return {
    async put(name, bytes) {
      if (!imageNamePattern.test(name)) throw new RangeError(`not an image name: ${name}`);
      ready ??= mkdir(directory, { recursive: true });
      await ready;
      // Written under its final name at once: its URL is handed out only after this resolves, so nobody asks for
      // it half written (and a write cut short by a crash leaves a file nobody has the URL of, swept later).
      // The callback API: fs/promises' FileHandle costs a promise per step, on every URL image.
      await new Promise<void>((resolve, reject) => writeFile(join(directory, name), bytes, (error) => (error ? reject(error) : resolve())));
    },
    async get(name) {
      if (!imageNamePattern.test(name)) return undefined;
      try {
        return await readFile(join(directory, name));
      } catch {
        return undefined;
      }
    },
    async sweep(maxAgeMs) {
      let names: string[];
      try {
        names = await readdir(directory);
      } catch {
        return 0;
      }
      const cutoff = Date.now() - maxAgeMs;
      let removed = 0;
      for (const name of names) {
        if (!imageNamePattern.test(name)) continue;
        const path = join(directory, name);
        // Another replica sharing the directory may sweep the same file first: a missing file is fine.
        const modified = await stat(path).then((info) => info.mtimeMs, () => undefined);
        if (modified !== undefined && modified < cutoff && (await rm(path, { force: true }).then(() => true, () => false))) removed++;
      }
      return removed;
    },
  };
}
