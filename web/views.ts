// The live view's pictures: the preview with the face box, the seven probabilities, the emotion
// timeline (one mark per window, with the change events), and the valence-arousal trajectory.
import { TABLE_II, valenceArousal } from '../schemas/emotions.ts';
import { EMOTIONS, type EmotionLabel } from '../schemas/kinds.ts';
import type { Box } from '../vision/crop-rules.ts';

export const COLOURS: Record<EmotionLabel, string> = {
  angry: '#d64541', disgust: '#7b9a3c', fear: '#8e5bb5', happy: '#f2b134', sad: '#3f7cc4', surprise: '#e07b39', neutral: '#8a8f98',
};

export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
  return best;
}

export function drawPreview(canvas: HTMLCanvasElement, video: HTMLVideoElement, box: Box | null, label: string | undefined): void {
  const ctx = canvas.getContext('2d')!;
  if (video.videoWidth && (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight)) {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
  }
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  if (!box) return;
  ctx.strokeStyle = '#3ddc84';
  ctx.lineWidth = 3;
  ctx.strokeRect(box.x, box.y, box.width, box.height);
  if (label) {
    ctx.font = 'bold 18px system-ui, sans-serif';
    ctx.fillStyle = '#3ddc84';
    ctx.fillText(label, box.x, Math.max(18, box.y - 6));
  }
}

/** Seven labelled bars, filled by the probabilities. */
export function renderBars(root: HTMLElement, probabilities: ArrayLike<number>): void {
  if (root.childElementCount !== EMOTIONS.length) {
    root.replaceChildren(
      ...EMOTIONS.map((e) => {
        const span = (cls: string, text = '') => Object.assign(document.createElement('span'), { className: cls, textContent: text });
        const row = document.createElement('div');
        row.className = 'bar';
        const fill = span('fill');
        // Set through the CSSOM: the page's CSP allows no inline style attributes.
        fill.style.background = COLOURS[e];
        const track = span('track');
        track.append(fill);
        row.append(span('name', e), track, span('value'));
        return row;
      }),
    );
  }
  EMOTIONS.forEach((_, i) => {
    const row = root.children[i] as HTMLElement;
    const p = probabilities[i] ?? 0;
    (row.querySelector('.fill') as HTMLElement).style.width = `${(p * 100).toFixed(1)}%`;
    row.querySelector('.value')!.textContent = p.toFixed(2);
  });
}

export interface WindowMark {
  readonly index: number;
  readonly label: EmotionLabel;
  readonly valence: number;
  readonly arousal: number;
  readonly atMs: number;
}

export interface ChangeMark {
  readonly label: string;
  readonly valence: number;
  readonly arousal: number;
  readonly atMs: number;
}

/**
 * Windows of `size` scores (the smoother's T): the mean of each closed window, its label and its
 * valence and arousal.
 */
export class Windows {
  readonly marks: WindowMark[] = [];
  private sum = new Float64Array(7);
  private count = 0;

  constructor(private readonly size: number) {}

  add(probabilities: readonly number[], atMs: number): WindowMark | undefined {
    probabilities.forEach((p, i) => (this.sum[i]! += p));
    if (++this.count < this.size) return undefined;
    const mean = Array.from(this.sum, (s) => s / this.count);
    this.sum = new Float64Array(7);
    this.count = 0;
    const mark = { index: this.marks.length, label: EMOTIONS[argmax(mean)]!, ...valenceArousal(mean), atMs };
    this.marks.push(mark);
    if (this.marks.length > 600) this.marks.shift();
    return mark;
  }
}

/** One coloured mark per window along time, the change events as lines with their label. */
export function drawTimeline(canvas: HTMLCanvasElement, windows: readonly WindowMark[], changes: readonly ChangeMark[], spanMs = 60_000): void {
  const ctx = canvas.getContext('2d')!;
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const now = Date.now();
  const x = (t: number) => width - ((now - t) / spanMs) * width;
  const rowH = (height - 20) / EMOTIONS.length;
  ctx.font = '11px system-ui, sans-serif';
  EMOTIONS.forEach((e, i) => {
    ctx.fillStyle = '#667';
    ctx.fillText(e, 2, 12 + i * rowH + rowH / 2);
  });
  for (const w of windows) {
    const px = x(w.atMs);
    if (px < 60) continue;
    ctx.fillStyle = COLOURS[w.label];
    ctx.fillRect(px - 3, 6 + EMOTIONS.indexOf(w.label) * rowH, 6, rowH - 4);
  }
  for (const c of changes) {
    const px = x(c.atMs);
    if (px < 60) continue;
    ctx.strokeStyle = '#222';
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(px, 0);
    ctx.lineTo(px, height - 14);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#222';
    ctx.fillText(`→ ${c.label}`, Math.min(px + 3, width - 60), height - 3);
  }
}

/** The circumplex: valence across, arousal up, the seven classes at the paper's Table II points, the trajectory of windows, the changes as rings. */
export function drawCircumplex(canvas: HTMLCanvasElement, windows: readonly WindowMark[], changes: readonly ChangeMark[]): void {
  const ctx = canvas.getContext('2d')!;
  const { width, height } = canvas;
  const pad = 24;
  const px = (v: number) => pad + v * (width - 2 * pad);
  const py = (a: number) => height - pad - a * (height - 2 * pad);
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = '#ccd';
  ctx.beginPath();
  ctx.arc(px(0.5), py(0.5), (width - 2 * pad) / 2, 0, 2 * Math.PI);
  ctx.moveTo(px(0), py(0.5));
  ctx.lineTo(px(1), py(0.5));
  ctx.moveTo(px(0.5), py(0));
  ctx.lineTo(px(0.5), py(1));
  ctx.stroke();
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#667';
  ctx.fillText('valence →', width - pad - 52, py(0.5) - 4);
  ctx.fillText('arousal ↑', px(0.5) + 4, pad - 8);
  for (const e of EMOTIONS) {
    const p = TABLE_II[e];
    ctx.fillStyle = COLOURS[e];
    ctx.fillRect(px(p.valence) - 3, py(p.arousal) - 3, 6, 6);
    ctx.fillText(e, px(p.valence) + 5, py(p.arousal) + 4);
  }
  const recent = windows.slice(-40);
  ctx.strokeStyle = 'rgba(30, 30, 60, 0.5)';
  ctx.beginPath();
  recent.forEach((w, i) => (i === 0 ? ctx.moveTo(px(w.valence), py(w.arousal)) : ctx.lineTo(px(w.valence), py(w.arousal))));
  ctx.stroke();
  recent.forEach((w, i) => {
    ctx.fillStyle = COLOURS[w.label];
    ctx.globalAlpha = 0.3 + (0.7 * (i + 1)) / recent.length;
    ctx.beginPath();
    ctx.arc(px(w.valence), py(w.arousal), 3.5, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.globalAlpha = 1;
  for (const c of changes.slice(-5)) {
    ctx.strokeStyle = COLOURS[c.label as EmotionLabel] ?? '#222';
    ctx.lineWidth = 2.5;
    ctx.beginPath();
    ctx.arc(px(c.valence), py(c.arousal), 8, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.lineWidth = 1;
  }
}
