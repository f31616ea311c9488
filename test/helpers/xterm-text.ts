import type { Page } from 'playwright-core';

/** The text in the web console's xterm.js buffer, as the user sees it (scrollback included). */
export const terminalText = (page: Page) =>
  page.evaluate(() => {
    const buffer = (window as unknown as { snabbvm: { term: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } } }).snabbvm.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  });
