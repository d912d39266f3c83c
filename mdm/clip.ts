/**
 * Device-supplied text quoted in an error message: at most `max` UTF-16 units plus "…", and never cut
 * between the two halves of a character (a lone surrogate would go out as U+FFFD and is not valid JSON text).
 */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const end = s.charCodeAt(max - 1) >= 0xd800 && s.charCodeAt(max - 1) <= 0xdbff ? max - 1 : max;
  return `${s.slice(0, end)}…`;
}
