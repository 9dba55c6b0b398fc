import { crc32 } from 'node:zlib';

/**
 * Writes zip archives the way torch.save does (caffe2/serialize/inline_container.cc over miniz 3, built
 * with MINIZ_NO_TIME and MZ_ZIP_FLAG_WRITE_ZIP64): every record stored under `<archive>/`, its data aligned
 * to 64 bytes by an "FB" extra field of 'Z' padding in the local header, local headers without sizes or
 * CRC (flag bit 3) followed by a 16-byte data descriptor, DOS date and time zero, and a zip64 end record
 * and locator before the classic end record.
 *
 * For hostile archives a record may instead be deflated and may declare a size it does not have.
 */

export interface ZipRecord {
  /** The name inside the archive folder. */
  readonly name: string;
  /** The whole entry name, ignoring the archive folder: for archives that break torch's layout. */
  readonly fullName?: string;
  readonly data: Uint8Array;
  /** Deflate-compressed data (method 8) rather than torch's stored records; `data` is then the compressed stream. */
  readonly deflated?: boolean;
  /** The uncompressed size to declare; by default the true one (only known for stored data). */
  readonly declaredSize?: number;
  readonly crc?: number;
  /** General-purpose flags; bit 0 marks the entry encrypted. */
  readonly flags?: number;
  readonly method?: number;
}

const ALIGNMENT = 64;

export function torchZip(records: readonly ZipRecord[], archiveName = 'archive'): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let cursor = 0;
  const emit = (chunk: Uint8Array): void => {
    chunks.push(chunk);
    cursor += chunk.length;
  };

  for (const record of records) {
    const name = new TextEncoder().encode(record.fullName ?? `${archiveName}/${record.name}`);
    const method = record.method ?? (record.deflated ? 8 : 0);
    const size = record.declaredSize ?? record.data.length;
    const crc = record.crc ?? (record.deflated ? 0 : crc32(record.data));
    const flags = record.flags ?? (record.data.length > 0 ? 0x0808 : 0x0800);
    const start = cursor + 30 + name.length + 4;
    const padding = (ALIGNMENT - (start % ALIGNMENT)) % ALIGNMENT;
    const extra = new Uint8Array(4 + padding).fill(0x5a);
    extra.set([0x46, 0x42, padding & 0xff, padding >> 8]);

    const offset = cursor;
    emit(header(30, (view) => {
      view.setUint32(0, 0x04034b50, true);
      view.setUint16(4, method === 0 ? 0 : 20, true);
      view.setUint16(6, flags, true);
      view.setUint16(8, method, true);
      // time, date, CRC and sizes stay zero: bit 3 puts them in the data descriptor.
      view.setUint16(26, name.length, true);
      view.setUint16(28, extra.length, true);
    }));
    emit(name);
    emit(extra);
    emit(record.data);
    if (flags & 0x08) {
      emit(header(16, (view) => {
        view.setUint32(0, 0x08074b50, true);
        view.setUint32(4, crc, true);
        view.setUint32(8, record.data.length, true);
        view.setUint32(12, size, true);
      }));
    }
    central.push(
      header(46, (view) => {
        view.setUint32(0, 0x02014b50, true);
        view.setUint16(6, method === 0 ? 0 : 20, true);
        view.setUint16(8, flags, true);
        view.setUint16(10, method, true);
        view.setUint32(16, crc, true);
        view.setUint32(20, record.data.length, true);
        view.setUint32(24, size, true);
        view.setUint16(28, name.length, true);
        view.setUint32(42, offset, true);
      }),
      name,
    );
  }

  const centralOffset = cursor;
  central.forEach(emit);
  const centralSize = cursor - centralOffset;
  const zip64EndOffset = cursor;
  emit(header(56, (view) => {
    view.setUint32(0, 0x06064b50, true);
    view.setBigUint64(4, 44n, true);
    view.setUint16(12, 0x031e, true);
    view.setUint16(14, 0x002d, true);
    view.setBigUint64(24, BigInt(records.length), true);
    view.setBigUint64(32, BigInt(records.length), true);
    view.setBigUint64(40, BigInt(centralSize), true);
    view.setBigUint64(48, BigInt(centralOffset), true);
  }));
  emit(header(20, (view) => {
    view.setUint32(0, 0x07064b50, true);
    view.setBigUint64(8, BigInt(zip64EndOffset), true);
    view.setUint32(16, 1, true);
  }));
  emit(header(22, (view) => {
    view.setUint32(0, 0x06054b50, true);
    view.setUint16(8, records.length, true);
    view.setUint16(10, records.length, true);
    view.setUint32(12, centralSize, true);
    view.setUint32(16, centralOffset, true);
  }));

  const archive = new Uint8Array(cursor);
  let at = 0;
  for (const chunk of chunks) {
    archive.set(chunk, at);
    at += chunk.length;
  }
  return archive;
}

function header(length: number, fill: (view: DataView) => void): Uint8Array {
  const bytes = new Uint8Array(length);
  fill(new DataView(bytes.buffer));
  return bytes;
}
