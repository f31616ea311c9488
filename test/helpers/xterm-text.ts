import type { Page } from 'playwright-core';

type XtermBuffer = { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined };

/**
 * The text in the web console's xterm.js buffer, as the user sees it (scrollback included); empty while the page's
 * script has not made the terminal yet.
 */
export const terminalText = (page: Page) =>
  page.evaluate(() => {
    const buffer = (window as unknown as { snabbvm?: { term?: { buffer: { active: XtermBuffer } } } }).snabbvm?.term?.buffer.active;
    if (!buffer) return '';
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  });
