import { EmbeddingFileError } from './embedding-file-error.js';
import { quoteUntrusted } from './quote-untrusted.js';
import { openZipArchive } from './zip-archive.js';

/**
 * The torch.save zip layout (PyTorch ≥ 1.6): every entry sits under one folder, `<archive>/`, named after
 * the saved file or simply "archive"; `data.pkl` is the pickle, `data/<key>` the raw bytes of each storage,
 * `byteorder` (newer versions) says how those bytes are ordered, and `version`, `.data/…`,
 * `.format_version` and `.storage_alignment` are bookkeeping read by nobody here.
 */

export interface TorchArchive {
  /** The raw `data.pkl`, not yet unpickled. */
  readonly pickle: Uint8Array;
  /** The bytes of `data/<key>`, read once (within the archive's byte budget) however often asked for. */
  readStorage(key: string): Promise<Uint8Array>;
  close(): void;
}

/** torch writes about six entries; a thousand leaves room for big state dicts while bounding the listing. */
export const TORCH_ARCHIVE_MAX_ENTRIES = 1000;
/** An embedding's pickle is about a kilobyte; the tensor bytes live outside it. */
export const TORCH_PICKLE_MAX_BYTES = 1024 * 1024;

const BYTEORDER_MAX_BYTES = 16;

export async function openTorchArchive(bytes: Uint8Array, maxUncompressedBytes: number): Promise<TorchArchive> {
  const zip = await openZipArchive(bytes, { maxEntries: TORCH_ARCHIVE_MAX_ENTRIES, maxUncompressedBytes });
  try {
    const prefix = archiveFolder(zip.names);
    if (!zip.names.includes(`${prefix}data.pkl`)) {
      throw unparseable(`the zip archive has no ${quoteUntrusted(`${prefix}data.pkl`)}, so it is not a torch.save file`);
    }
    if (zip.names.includes(`${prefix}byteorder`)) {
      const order = new TextDecoder('latin1').decode(await zip.read(`${prefix}byteorder`, BYTEORDER_MAX_BYTES));
      if (order !== 'little') {
        throw unparseable(`the archive's byteorder is ${quoteUntrusted(order, BYTEORDER_MAX_BYTES)}; only little-endian torch files are read`);
      }
    }
    const pickle = await zip.read(`${prefix}data.pkl`, TORCH_PICKLE_MAX_BYTES);
    const storages = new Map<string, Promise<Uint8Array>>();
    return {
      pickle,
      async readStorage(key) {
        let storage = storages.get(key);
        if (storage === undefined) {
          const name = `${prefix}data/${key}`;
          if (!zip.names.includes(name)) {
            throw unparseable(`the pickle refers to storage ${quoteUntrusted(key)}, but the archive has no ${quoteUntrusted(name)}`);
          }
          storage = zip.read(name);
          storages.set(key, storage);
        }
        return storage;
      },
      close: () => zip.close(),
    };
  } catch (error) {
    zip.close();
    throw error;
  }
}

/** Like torch's reader, the folder is taken from the first entry; every other entry must share it. */
function archiveFolder(names: readonly string[]): string {
  const first = names[0];
  const slash = first?.indexOf('/') ?? -1;
  if (first === undefined || slash <= 0) throw unparseable('the zip archive does not keep its entries in one folder, as torch.save does');
  const prefix = first.slice(0, slash + 1);
  const stray = names.find((name) => !name.startsWith(prefix));
  if (stray !== undefined) {
    throw unparseable(`archive entry ${quoteUntrusted(stray)} is outside the folder ${quoteUntrusted(prefix)} that torch.save puts everything in`);
  }
  return prefix;
}

function unparseable(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unparseable', message);
}
