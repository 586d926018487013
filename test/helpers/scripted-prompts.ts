import { checkbox, confirm, input, select } from '@inquirer/prompts';
import { render } from '@inquirer/testing';
import type { Prompts } from '../../src/cli/wizard/prompts.js';

/**
 * The wizards' Prompts driven through @inquirer/testing: every question is
 * the real @inquirer/prompts prompt, rendered to a virtual screen and
 * answered by keypresses from a script, in order. A step names the question
 * it expects (so a test fails where the wizard took another turn), the
 * answer, and optionally values typed first that validation must refuse,
 * with the refusal the screen must show.
 */
export interface Step {
  q: RegExp;
  a: string | boolean | string[];
  /** Typed before `a`; each must be refused on screen with `refusal`. */
  invalid?: string[];
  refusal?: RegExp;
}

export interface Scripted extends Prompts {
  said: string[];
  /** Every question's screen as first shown (select choices, defaults…). */
  screens: string[];
  remaining(): Step[];
}

const tick = () => new Promise((r) => setTimeout(r, 5));

export function scriptedPrompts(script: Step[]): Scripted {
  const steps = [...script];
  const said: string[] = [];
  const screens: string[] = [];
  // Screens wrap at 80 columns: match on the text with its line breaks folded.
  const flat = (s: string) => s.replace(/\s+/g, ' ');
  const next = (raw: string): Step => {
    const screen = flat(raw);
    screens.push(screen);
    const s = steps.shift();
    if (!s) throw new Error(`the wizard asked a question the script does not answer:\n${screen}`);
    if (!s.q.test(screen)) throw new Error(`expected a question matching ${s.q}, the wizard asked:\n${screen}`);
    return s;
  };
  const typeLine = async (events: { type(t: string): void; keypress(k: string): void }, text: string) => {
    events.type(text);
    events.keypress('enter');
    await tick();
  };
  return {
    said,
    screens,
    remaining: () => steps,
    say: (l) => said.push(l),
    async input(c) {
      const { answer, events, getScreen } = await render(input, c);
      const s = next(getScreen());
      for (const bad of s.invalid ?? []) {
        await typeLine(events, bad);
        const screen = flat(getScreen());
        if (s.refusal && !s.refusal.test(screen)) throw new Error(`expected ${s.refusal} after typing ${bad}, screen:\n${screen}`);
        for (let i = 0; i < bad.length; i++) events.keypress('backspace');
      }
      await typeLine(events, String(s.a));
      return answer;
    },
    async confirm(c) {
      const { answer, events, getScreen } = await render(confirm, c);
      const s = next(getScreen());
      await typeLine(events, s.a === true ? 'y' : 'n');
      return answer;
    },
    async select(c) {
      const { answer, events, getScreen } = await render(select, c);
      const s = next(getScreen());
      const want = c.choices.findIndex((ch) => ch.value === s.a);
      if (want < 0) throw new Error(`no choice ${String(s.a)} in: ${c.choices.map((ch) => ch.value).join(', ')}`);
      const from = Math.max(0, c.choices.findIndex((ch) => ch.value === c.default));
      for (let i = from; i < want; i++) events.keypress('down');
      for (let i = from; i > want; i--) events.keypress('up');
      events.keypress('enter');
      await tick();
      return answer;
    },
    async checkbox(c) {
      const { answer, events, getScreen } = await render(checkbox, c);
      const s = next(getScreen());
      const want = s.a as string[];
      let at = 0;
      c.choices.forEach((ch, i) => {
        if (want.includes(ch.value) === (ch.checked ?? false)) return;
        for (; at < i; at++) events.keypress('down');
        events.keypress('space');
      });
      events.keypress('enter');
      await tick();
      return answer;
    },
  };
}
