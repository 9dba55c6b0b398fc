import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where images of outputType URL live until clients fetch them. The interface is the seam for other
 * backends (an S3-compatible bucket is the scale-out option); the default is a directory, which replicas
 * share when it is a shared volume.
 */
export interface ImageStore {
  put(name: string, bytes: Uint8Array): Promise<void>;
  get(name: string): Promise<Uint8Array | undefined>;
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
      // Written aside and renamed, so a reader never sees half an image.
      const partial = join(directory, `.${name}.partial`);
      await writeFile(partial, bytes);
      await rename(partial, join(directory, name));
    },
    async get(name) {
      if (!imageNamePattern.test(name)) return undefined;
      try {
        return await readFile(join(directory, name));
      } catch {
        return undefined;
      }
    },
  };
}
