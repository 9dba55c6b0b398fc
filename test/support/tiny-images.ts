import { crc32, deflateSync } from 'node:zlib';

/**
 * Small but real images in the three output formats, for fakes that must answer with decodable bytes
 * without a GPU. The PNG is encoded here (its colour follows the seed, so images of one job differ); the
 * JPEG and the WEBP are fixed 1×1 files.
 */

export type TinyImageFormat = 'PNG' | 'JPG' | 'WEBP';

export const pngSignature = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** Side of the square PNG, in pixels. */
export const tinyPngSide = 8;

// Written once by Pillow 13 (`Image.new('RGB', (1, 1), (200, 120, 40)).save(out, 'JPEG', quality=90,
// optimize=True)`): baseline JFIF with its own Huffman tables, so every decoder reads it; Pillow decodes it
// back to one orange pixel.
const jpeg1x1 = Buffer.from(
  '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/' +
    '2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/wAARCAABAAEDASIAAhEBAxEB/8QAFQAB' +
    'AQAAAAAAAAAAAAAAAAAAAAX/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFQEBAQAAAAAAAAAAAAAAAAAABwj/xAAUEQEAAAAAAAAAAAAAAAAAAAAA/9oADAMBAAIR' +
    'AxEAPwCmAnI+v//Z',
  'base64',
);

// Written once by Pillow 13 (`…save(out, 'WEBP', lossless=True)` of the same pixel): RIFF container with one
// VP8L (lossless) chunk.
const webp1x1 = Buffer.from('UklGRh4AAABXRUJQVlA4TBEAAAAvAAAAAAdQvCIXpf+BiOh/AAA=', 'base64');

/** A real image of the format; the PNG's colour derives from the seed. Each call returns fresh bytes. */
export function tinyImage(format: TinyImageFormat, seed: bigint): Uint8Array {
  switch (format) {
    case 'PNG':
      return tinyPng(seedColour(seed));
    case 'JPG':
      return Uint8Array.from(jpeg1x1);
    case 'WEBP':
      return Uint8Array.from(webp1x1);
  }
}

/**
 * The same PNG made `extraBytes` larger by an ancillary chunk (`caNv`, which decoders skip), for tests that
 * need big answers without big pixels.
 */
export function paddedPng(png: Uint8Array, extraBytes: number): Uint8Array {
  if (extraBytes <= 12) return png;
  const end = png.length - 12; // IEND is the last 12 bytes
  return Buffer.concat([png.subarray(0, end), pngChunk('caNv', Buffer.alloc(extraBytes - 12, 0x20)), png.subarray(end)]);
}

/** Three colour bytes from a 64-bit seed, through SplitMix64's finaliser so that seeds n and n+1 look unalike. */
export function seedColour(seed: bigint): [number, number, number] {
  const mask = (1n << 64n) - 1n;
  let z = (seed + 0x9e3779b97f4a7c15n) & mask;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
  z ^= z >> 31n;
  return [Number(z & 0xffn), Number((z >> 8n) & 0xffn), Number((z >> 16n) & 0xffn)];
}

/** An 8×8 truecolour PNG of one colour: IHDR, one zlib IDAT of unfiltered rows, IEND. */
function tinyPng([red, green, blue]: [number, number, number]): Uint8Array {
  const side = tinyPngSide;
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  // compression, filter and interlace methods stay 0
  const rowLength = 1 + side * 3;
  const raw = Buffer.alloc(rowLength * side);
  for (let row = 0; row < side; row += 1) {
    // Each row starts with filter type 0 (None), already zero.
    for (let column = 0; column < side; column += 1) {
      const offset = row * rowLength + 1 + column * 3;
      raw[offset] = red;
      raw[offset + 1] = green;
      raw[offset + 2] = blue;
    }
  }
  return Buffer.concat([pngSignature, pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** Length, type, data, then the CRC-32 of type and data (PNG spec §5.3). */
function pngChunk(type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}
