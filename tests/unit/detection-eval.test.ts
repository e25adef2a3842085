import { describe, expect, it } from 'vitest';
import { scoreDetections, type Scene } from '../../vision/detection-eval.ts';

const scene = (faces: Scene['faces'], ignore: Scene['ignore'] = []): Scene => ({ kind: faces.length ? 'photo' : 'none', jpeg: Buffer.alloc(0), faces, ignore });
const det = (x: number, y: number, size: number, score = 0.9) => ({ x, y, width: size, height: size, score });

describe('detection scoring', () => {
  it('counts a face found at IoU >= 0.5, a detection on a cut face as neither, and everything else as a false positive', () => {
    const scenes = [
      scene([{ x: 100, y: 100, width: 100, height: 100 }, { x: 400, y: 100, width: 40, height: 40 }], [{ x: -50, y: 300, width: 100, height: 100 }]),
      scene([]),
    ];
    const detections = [
      [det(105, 105, 100), det(-40, 300, 90), det(500, 400, 50)], // big face found; the cut face ignored; one false positive; the small face missed
      [det(10, 10, 30)], // a false alarm in a scene without a face
    ];
    const r = scoreDetections(scenes, detections, 'test', 1);
    expect(r.faces).toBe(2);
    expect(r.recall).toBe(0.5);
    expect(r.recallBySize.small).toBe(0);
    expect(r.recallBySize.medium).toBe(1);
    expect(r.recallBySize.large).toBeNaN();
    expect(r.falsePositivesPerScene).toBe(1);
    expect(r.largestRecall).toBe(1);
    expect(r.largestCorrect).toBe(1);
    expect(r.falseAlarmScenes).toBe(1);
  });

  it('says when the largest detection is not a face although the largest face was found', () => {
    const r = scoreDetections([scene([{ x: 100, y: 100, width: 80, height: 80 }])], [[det(100, 100, 80), det(300, 200, 150, 0.7)]], 'test', 1);
    expect(r.largestRecall).toBe(1);
    expect(r.largestCorrect).toBe(0);
  });

  it('matches each face to one detection at most', () => {
    const r = scoreDetections([scene([{ x: 0, y: 0, width: 100, height: 100 }])], [[det(0, 0, 100), det(2, 2, 100, 0.8)]], 'test', 1);
    expect(r.recall).toBe(1);
    expect(r.falsePositivesPerScene).toBe(1);
  });
});
