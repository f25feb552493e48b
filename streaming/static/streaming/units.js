/**
 * Sizes, rates, durations and counts as people read them: the twin of streaming/units.py, with the
 * same output for the same input (tests/test_units.py runs both on one list of values).
 */

const SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `value` rounded to tenths, as an integer count of tenths (half up, as in units.py). */
function tenths(value) {
  return Math.floor(value * 10 + 0.5);
}

/** Short: one decimal under 10 (none when whole), whole up to 999, then k, M and G. */
export function formatNumber(value) {
  if (value < 0) return `-${formatNumber(-value)}`;
  for (const [scale, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (value >= scale * 0.9995) return formatNumber(value / scale) + suffix;
  }
  const count = tenths(value);
  if (count < 100) {
    const whole = Math.floor(count / 10);
    const tenth = count % 10;
    return tenth ? `${whole}.${tenth}` : String(whole);
  }
  return String(Math.floor(value + 0.5));
}

/** `size` bytes in the largest binary unit under which it is at least 1: "96.7 MiB". */
export function formatBytes(size) {
  let unit = 0;
  while (size >= 1023.95 && unit < SIZE_UNITS.length - 1) {
    size /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.floor(size + 0.5)} B`;
  const count = tenths(size);
  if (count >= 1000) return `${Math.floor(size + 0.5)} ${SIZE_UNITS[unit]}`;
  return `${Math.floor(count / 10)}.${count % 10} ${SIZE_UNITS[unit]}`;
}

/** A rate: "0 msg/s", "2.5 msg/s", "1.2k msg/s". */
export function formatRate(perSecond, noun = "msg") {
  return `${formatNumber(perSecond)} ${noun}/s`;
}

/** "850 ms", "4.2 s", "3 min 5 s", "2 h 4 min". */
export function formatDuration(seconds) {
  if (seconds < 0) return `-${formatDuration(-seconds)}`;
  if (seconds < 0.9995) return `${formatNumber(seconds * 1000)} ms`;
  if (seconds < 59.5) return `${formatNumber(seconds)} s`;
  const whole = Math.floor(seconds + 0.5);
  if (whole < 3600) {
    const [minutes, rest] = [Math.floor(whole / 60), whole % 60];
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const minutes = Math.floor(whole / 60);
  const [hours, rest] = [Math.floor(minutes / 60), minutes % 60];
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

/** "3.5 %", "42 %". */
export function formatPercent(value) {
  return `${formatNumber(value)} %`;
}

/** "1 connection", "2 connections". */
export function formatCount(count, noun, plural = null) {
  return `${count} ${count === 1 ? noun : (plural ?? `${noun}s`)}`;
}
