import { describe, expect, it } from '@jest/globals';
import { escapeHtml, markdownText } from '../../src/action/summary.js';

// What a pack's writer controls (its key's suffix, text its index quotes in an error) reaches the
// job summary, which GitHub renders as Markdown.
describe('text from a pack in the job summary', () => {
  it('renders as the literal text: no image, link, autolink, HTML, emphasis or new block', () => {
    expect(markdownText('![x](https://evil.example/p.png) [fix it](https://evil.example)')).toBe(
      '\\!\\[x\\]\\(https\\://evil.example/p.png\\) \\[fix it\\]\\(https\\://evil.example\\)',
    );
    expect(markdownText('<img src=x onerror=alert(1)> & *bold* _it_ ~~s~~ `code` \\')).toBe(
      '&lt;img src=x onerror=alert\\(1\\)&gt; &amp; \\*bold\\* \\_it\\_ \\~\\~s\\~\\~ \\`code\\` \\\\',
    );
    expect(markdownText('first\n\n# Heading\n- item\r\n> quote')).toBe('first # Heading - item &gt; quote');
  });

  it('leaves a plain key as it is but for its colons', () => {
    expect(markdownText('sluice-pack-v1:Linux:X64::refs/heads/main:1')).toBe(
      'sluice-pack-v1\\:Linux\\:X64\\:\\:refs/heads/main\\:1',
    );
  });

  it('keeps error text inside the HTML list it is written to (no blank line ends the block)', () => {
    expect(escapeHtml('refused:\n\n![x](https://evil.example/p.png)\n<b>bold</b> & more')).toBe(
      'refused: ![x](https://evil.example/p.png) &lt;b&gt;bold&lt;/b&gt; &amp; more',
    );
  });
});
