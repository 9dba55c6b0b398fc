/**
 * Quotes text that came out of an untrusted file (a pickle global, a tensor or entry name) for an error
 * message: cut to a short length, with quotes and backslashes escaped and everything outside printable ASCII
 * written as \uXXXX, so a hostile name can neither flood a log nor smuggle control or bidirectional
 * characters into it.
 */
export function quoteUntrusted(text: string, maxLength = 80): string {
  const cut = text.length > maxLength ? text.slice(0, maxLength) : text;
  const escaped = cut.replace(/[^\x20-\x7e]|["\\]/g, (character) =>
    character === '"' || character === '\\' ? `\\${character}` : `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `"${escaped}"${text.length > maxLength ? '…' : ''}`;
}
