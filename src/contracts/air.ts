import { LRUCache } from 'lru-cache';

/**
 * AIR — the identifier that names a model: `source:id@version` (`civitai:118418@134583`,
 * `runware:100@1`, `recraft:v4.1-pro@0`). Ids and versions may be non-numeric. Civitai's URN form
 * `urn:air:{ecosystem}:{type}:{source}:{id}@{version}` is accepted and normalised to the short form; its
 * ecosystem and type are kept only as hints, since the model's own record is what we trust.
 */

export interface Air {
  /** Lower-cased source: `civitai`, `runware`, `recraft`, … */
  readonly source: string;
  readonly id: string;
  readonly version: string;
  /** The normalised short form, used as the key everywhere. */
  readonly canonical: string;
  /** From the URN form only; never trusted over the model's record. */
  readonly ecosystemHint?: string;
  readonly typeHint?: string;
}


export const AIR_MAX_LENGTH = 300;

/**
 * Both forms as one JSON-Schema pattern — what the OpenAPI document and its clients check — built from the
 * same parts parseAir matches with: no flags (JSON Schema has none, and a case-insensitive flag would also
 * fold letters such as "ſ" into ASCII), both cases spelled out, surrounding blanks taken as parseAir trims them.
 */
const sourcePattern = '[A-Za-z][A-Za-z0-9_-]{0,31}';
const partPattern = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}';
const shortForm = new RegExp(`^(${sourcePattern}):(${partPattern})@(${partPattern})$`);
const urnForm = new RegExp(`^[Uu][Rr][Nn]:[Aa][Ii][Rr]:(${partPattern}):(${partPattern}):(${sourcePattern}):(${partPattern})@(${partPattern})$`);
export const AIR_PATTERN = `^\\s*(?:${sourcePattern}:${partPattern}@${partPattern}|[Uu][Rr][Nn]:[Aa][Ii][Rr]:${partPattern}:${partPattern}:${sourcePattern}:${partPattern}@${partPattern})\\s*$`;

export const airFormatHint =
  'an AIR such as "civitai:118418@134583" or "urn:air:sdxl:embedding:civitai:118418@134583" (source:id@version)';

/**
 * Requests name the same few models over and over, so parsed AIRs are remembered (bounded; a flood of junk
 * only evicts). They are frozen, since every task naming the model shares the object.
 */
const parsedAirs = new LRUCache<string, Air | false>({ max: 4096 });

export function parseAir(text: string): Air | undefined {
  if (text.length > AIR_MAX_LENGTH) return undefined;
  const known = parsedAirs.get(text);
  if (known !== undefined) return known === false ? undefined : known;
  const air = parseAirText(text);
  parsedAirs.set(text, air ? Object.freeze(air) : false);
  return air;
}

function parseAirText(text: string): Air | undefined {
  const trimmed = text.trim();
  const urn = urnForm.exec(trimmed);
  if (urn) {
    // The regex guarantees every group; the defaults only satisfy the type checker.
    const [, ecosystem = '', type = '', source = '', id = '', version = ''] = urn;
    return build(source, id, version, { ecosystemHint: ecosystem.toLowerCase(), typeHint: type.toLowerCase() });
  }
  const short = shortForm.exec(trimmed);
  if (short) {
    const [, source = '', id = '', version = ''] = short;
    return build(source, id, version, {});
  }
  return undefined;
}

function build(source: string, id: string, version: string, hints: Pick<Air, 'ecosystemHint' | 'typeHint'>): Air {
  const normalisedSource = source.toLowerCase();
  return { source: normalisedSource, id, version, canonical: `${normalisedSource}:${id}@${version}`, ...hints };
}
