// The EmotionMuse web client: sign in with a token, consent to a privacy level, the camera through
// getUserMedia, the face found and cropped on the device, frames to the gateway at 10 a second,
// and a live view of what comes back. Served by `emotionmuse gateway`; bundled by esbuild.
import type { ServerMessage } from '../gateway/protocol.ts';
import { PRIVACY_LEVELS, PRIVACY_TEXT, type PrivacyLevel } from '../edge/privacy.ts';
import { DEFAULT_SMOOTHER_CONFIG } from '../processors/smoother/core.ts';
import { EMOTIONS } from '../schemas/kinds.ts';
import type { Box } from '../vision/crop-rules.ts';
import { BrowserStream } from './stream.ts';
import { BrowserVision, rgbOf, type ClientConfig } from './vision.ts';
import { argmax, drawCircumplex, drawPreview, drawTimeline, renderBars, Windows, type ChangeMark } from './views.ts';

const FPS = 10;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

type ListMessage = Extract<ServerMessage, { type: 'list' }>;

/** The token from `?token=` (development sign-in), kept for this tab only and taken out of the address bar. */
function takeToken(): string | undefined {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem('em.token', fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search);
  }
  return sessionStorage.getItem('em.token') ?? undefined;
}

/** The token's subject, for display only (the gateway verifies the token). */
function subjectOf(token: string): string {
  try {
    return (JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: string }).sub ?? '?';
  } catch {
    return '?';
  }
}

const state = {
  box: null as Box | null,
  label: undefined as string | undefined,
  windows: new Windows(DEFAULT_SMOOTHER_CONFIG.windowSize),
  changes: [] as ChangeMark[],
  throttled: 0,
  errors: 0,
  noFace: 0,
};

function status(text: string, ok: boolean): void {
  const el = $('status');
  el.textContent = text;
  el.className = ok ? 'ok' : 'bad';
}

function renderList(list: ListMessage, token: string): void {
  const body = $('list').querySelector('tbody')!;
  body.replaceChildren(
    ...list.items.map((it) => {
      const tr = document.createElement('tr');
      const cells = [String(it.rank), it.title ? `${it.title} — ${it.artist ?? ''}` : it.trackId, it.preferenceScore.toFixed(3), it.emotionScore.toFixed(3), it.finalScore.toFixed(3)];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      const td = document.createElement('td');
      const play = document.createElement('button');
      play.textContent = '▶ play';
      play.onclick = async () => {
        play.disabled = true;
        const res = await fetch('/v1/me/listens', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ trackId: it.trackId, listenedMs: 30_000, outcome: 'COMPLETED' }) });
        play.textContent = res.ok ? 'played' : `error ${res.status}`;
      };
      td.append(play);
      tr.append(td);
      return tr;
    }),
  );
  $('list-meta').textContent = `${list.trigger.toLowerCase().replace('_', ' ')}${list.emotion ? `, for ${list.emotion.label}` : ''}, ${new Date(list.createdTimeMs).toLocaleTimeString()}`;
  $('list').dataset.lists = String(Number($('list').dataset.lists ?? 0) + 1);
}

function onMessage(m: ServerMessage, token: string): void {
  switch (m.type) {
    case 'score':
      if (!m.faceFound) {
        state.noFace++;
        return;
      }
      renderBars($('bars'), m.probabilities);
      state.label = EMOTIONS[argmax(m.probabilities)];
      $('label').textContent = state.label ?? '—';
      state.windows.add(m.probabilities, m.captureTimeMs);
      return;
    case 'change': {
      state.changes.push({ label: m.label, valence: m.valence, arousal: m.arousal, atMs: m.captureTimeMs });
      const li = document.createElement('li');
      li.textContent = `${new Date(m.emittedTimeMs).toLocaleTimeString()}  ${m.previousLabel ?? '(start)'} → ${m.label}  (valence ${m.valence.toFixed(2)}, arousal ${m.arousal.toFixed(2)})`;
      $('changes').prepend(li);
      $('mood').textContent = m.label;
      return;
    }
    case 'list':
      return renderList(m, token);
    case 'throttle':
      state.throttled++;
      return;
    case 'error':
      state.errors++;
      $('last-error').textContent = `${m.code}: ${m.message}`;
      return;
    default:
  }
}

/** The live view and the socket, without a camera (watching a session published elsewhere) or before it. */
async function connect(token: string): Promise<BrowserStream> {
  $('consent').hidden = true;
  $('live').hidden = false;
  const stream = new BrowserStream(token, { onMessage: (m) => onMessage(m, token), onStatus: status });
  stream.connect();
  const last = await fetch('/v1/me/recommendations', { headers: { authorization: `Bearer ${token}` } });
  if (last.ok) renderList({ type: 'list', ...(await last.json()) } as ListMessage, token);
  const paint = () => {
    drawTimeline($<HTMLCanvasElement>('timeline'), state.windows.marks, state.changes);
    drawCircumplex($<HTMLCanvasElement>('circumplex'), state.windows.marks, state.changes);
    $('counters').textContent = `sent ${stream.sent}, acked ${stream.acked}, no face ${state.noFace}, throttled ${state.throttled}, errors ${state.errors}`;
    requestAnimationFrame(paint);
  };
  requestAnimationFrame(paint);
  return stream;
}

async function start(token: string, privacy: PrivacyLevel, config: ClientConfig): Promise<void> {
  $('level').textContent = `${privacy}: ${PRIVACY_TEXT[privacy]}`;
  status('starting the camera', true);
  const video = $<HTMLVideoElement>('video');
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  await video.play();
  status('loading the face detector', true);
  const vision = await BrowserVision.create(config);
  if (privacy === 'scores') await vision.withCnn();
  const stream = await connect(token);

  const grab = document.createElement('canvas');
  let busy = false;
  setInterval(async () => {
    if (busy || !stream.open || !video.videoWidth) return;
    busy = true;
    try {
      const width = video.videoWidth;
      const height = video.videoHeight;
      grab.width = width;
      grab.height = height;
      const ctx = grab.getContext('2d', { willReadFrequently: true })!;
      ctx.drawImage(video, 0, 0, width, height);
      const captureTimeMs = Date.now();
      if (privacy === 'frame') {
        const blob = await new Promise<Blob>((resolve) => grab.toBlob((b) => resolve(b!), 'image/jpeg', 0.85));
        stream.send({ kind: 'JPEG', captureTimeMs, width, height, faceBox: null, data: new Uint8Array(await blob.arrayBuffer()) });
        return;
      }
      const t0 = performance.now();
      const a = await vision.analyze(rgbOf(ctx.getImageData(0, 0, width, height).data, width, height), width, height, privacy === 'scores');
      $('device-ms').textContent = (performance.now() - t0).toFixed(0);
      state.box = a.box;
      if (!a.box || !a.crop) stream.send({ kind: 'NONE', captureTimeMs, width: 0, height: 0, faceBox: null, data: new Uint8Array(0) });
      else if (a.probabilities) stream.send({ kind: 'SCORES', captureTimeMs, width: 0, height: 0, faceBox: a.box, data: new Uint8Array(0), probabilities: Array.from(a.probabilities), modelVersion: config.emotionModelVersion });
      else stream.send({ kind: 'GRAY8', captureTimeMs, width: config.inputSide, height: config.inputSide, faceBox: a.box, data: a.crop });
    } finally {
      busy = false;
    }
  }, 1000 / FPS);

  const preview = () => {
    drawPreview($<HTMLCanvasElement>('preview'), video, state.box, state.label);
    requestAnimationFrame(preview);
  };
  requestAnimationFrame(preview);
}

async function boot(): Promise<void> {
  const config = (await (await fetch('/config.json')).json()) as ClientConfig;
  const token = takeToken();
  if (!token) {
    $('signin').hidden = false;
    $('signin-form').onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem('em.token', ($<HTMLTextAreaElement>('token-input')).value.trim());
      location.reload();
    };
    return;
  }
  $('user').textContent = subjectOf(token);
  $('consent').hidden = false;
  $('levels').replaceChildren(
    ...PRIVACY_LEVELS.map((level) => {
      const label = document.createElement('label');
      label.innerHTML = `<input type="radio" name="privacy" value="${level}" ${level === 'crop' ? 'checked' : ''}> <b>${level}</b>: <span></span>`;
      label.querySelector('span')!.textContent = `sends ${config.privacy[level] ?? PRIVACY_TEXT[level]}.`;
      return label;
    }),
  );
  $('consent-form').onsubmit = (e) => {
    e.preventDefault();
    const level = (document.querySelector('input[name=privacy]:checked') as HTMLInputElement).value as PrivacyLevel;
    start(token, level, config).catch((err: unknown) => status(`could not start: ${err instanceof Error ? err.message : String(err)}`, false));
  };
  $('watch').onclick = () => {
    $('level').textContent = 'nothing: the camera is off (watching this user\'s session from wherever it is published)';
    $('preview').hidden = true;
    void connect(token);
  };
}

void boot();
