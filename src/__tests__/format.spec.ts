/**
 * Sizes in the runs sidebar read as `%wdl runs` prints them (miniwdl_jupyter/disk_usage.py `human`).
 */

import { humanBytes } from '../format';

describe('humanBytes', () => {
  it('uses the decimal units %wdl runs uses', () => {
    expect(humanBytes(512)).toBe('512 B');
    expect(humanBytes(12345)).toBe('12.3 kB');
    expect(humanBytes(3_100_000)).toBe('3.1 MB');
    expect(humanBytes(2_500_000_000_000_000)).toBe('2500.0 TB');
  });
  it('shows an unknown size as a dash', () => {
    expect(humanBytes(null)).toBe('-');
  });
});
