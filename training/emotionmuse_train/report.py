"""The markdown report and its SVG plot."""
import numpy as np

from .train import KINDS

METRICS = ["p", "r", "ndcg", "hr"]


def mean_std(values):
    a = np.array(values)
    return f"{a.mean():.4f} ± {a.std():.4f}" if len(a) > 1 else f"{a.mean():.4f}"


def rows_of(results: dict):
    """results[row_name] = list over seeds of {'sampled': {...}, 'full': {...}}; full-catalogue
    cells first, the paper's sampled protocol second."""
    for name, runs in results.items():
        cells = [mean_std([r["full"][m] for r in runs]) for m in METRICS] + [mean_std([r["sampled"][m] for r in runs]) for m in METRICS]
        yield name, cells


def _ndcg(results: dict, name: str, protocol: str = "full"):
    runs = results.get(name)
    return float(np.mean([r[protocol]["ndcg"] for r in runs])) if runs else None


def findings(results: dict) -> list:
    """Plain sentences read off the table (full-catalogue NDCG@10): the sequence model against
    the baselines, emotion inputs in order, reranking, the best row."""
    out = []
    no = _ndcg(results, KINDS["bilstm"])
    baselines = [(KINDS[k], _ndcg(results, KINDS[k])) for k in ("popularity", "item-knn")]
    baselines = [b for b in baselines if b[1] is not None]
    if no is not None and baselines:
        beaten = [n for n, v in baselines if no > v]
        out.append(f"- {KINDS['bilstm']} ({no:.4f}) against " + ", ".join(f"{n} ({v:.4f})" for n, v in baselines) + ": "
                   + ("above every one." if len(beaten) == len(baselines) else f"not above {', '.join(n for n, v in baselines if n not in beaten)}."))
    inputs = [(KINDS[k], _ndcg(results, KINDS[k])) for k in ("bilstm-onehot", "bilstm-soft", "bilstm-va")]
    inputs = sorted([x for x in inputs if x[1] is not None], key=lambda x: -x[1])
    if len(inputs) > 1:
        out.append("- Emotion inputs, best first by full-catalogue NDCG@10: " + ", ".join(f"{n} ({v:.4f})" for n, v in inputs) + ".")
    bases = sorted({name.split(" + reranking")[0] for name in results if " + reranking, lambda " in name})
    for base_name in bases:
        base = _ndcg(results, base_name)
        reranked = [(name, _ndcg(results, name)) for name in results if name.startswith(base_name + " + reranking")]
        if base is None or not reranked:
            continue
        better = [n.rsplit(" ", 1)[-1] for n, v in reranked if v > base + 1e-9]
        values = ", ".join(f"{n.rsplit(' ', 1)[-1]}: {v:.4f}" for n, v in reranked)
        out.append(f"- Emotion-compatibility reranking of {base_name} (full-catalogue NDCG@10 {base:.4f} without it; by lambda {values}) "
                   + (f"is higher only at lambda {', '.join(better)}." if better else "is not higher at any lambda tried."))
    va, plain = _ndcg(results, KINDS["bilstm-va"]), _ndcg(results, KINDS["bilstm"])
    if va is not None and plain is not None:
        out.append(f"- Valence-arousal conditioning: the Bi-LSTM with it {va:.4f}, without it {plain:.4f} (full-catalogue NDCG@10): "
                   + ("higher with it." if va > plain else "not higher with it."))
    best = max(results, key=lambda n: _ndcg(results, n))
    out.append(f"- Best row by full-catalogue NDCG@10: {best} ({_ndcg(results, best):.4f}); popularity: {_ndcg(results, KINDS['popularity']) or 0:.4f}.")
    return out


def tuning_lines(context: dict) -> list:
    trials = context.get("tuning") or []
    if not trials:
        return ["- Tuning: none (`--tune` not given); every model used the defaults above."]
    lines = ["", "Tuning on the validation split (seed 0; the chosen settings, best by full-catalogue NDCG@10, trained every seed):", "",
             "| model | settings | validation NDCG@10 (full) | epochs |", "|---|---|---|---|"]
    for t in trials:
        mark = " (chosen)" if context.get("chosen", {}).get(t["model"]) == t["settings"] else ""
        settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in t["settings"].items())
        lines.append(f"| {t['model']} | {settings}{mark} | {t['val_ndcg10_full']:.4f} | {t.get('epochs', '')} |")
    return lines + [""]


def serving_lines(context: dict) -> list:
    """Which model the recommender serves, chosen on validation, against every other candidate."""
    serving = context.get("serving")
    if not serving:
        return []
    names = {**KINDS, "hybrid": f"Hybrid ({serving.get('neighbourhood')} candidates + {serving.get('sequence')}, weight {serving.get('weight')})"}
    ranked = sorted(serving["validation"].items(), key=lambda kv: -kv[1])
    lines = ["", "## The served model", "",
             f"Chosen on the validation split, by full-catalogue NDCG@10, among every model the recommender can serve (popularity, "
             f"BPR-MF and the unpruned baseline item-kNN are not served): **{names.get(serving['model'], serving['model'])}** "
             f"(`card.json` `serving.kind` = `{serving['kind']}`; the recommender's `--serve auto` follows it).", "",
             "| model | validation NDCG@10 (full) |", "|---|---|"]
    lines += [f"| {names.get(k, k)}{' (served)' if k == serving['model'] else ''} | {v:.4f} |" for k, v in ranked]
    return lines + [""]


def profile_lines(histories: dict) -> list:
    """Where each trained model's epochs went, and how many fit in its share of the budget."""
    if not histories:
        return []
    lines = ["", "## Training time", "", "Per model (seed 0): epochs run, training targets per epoch, and the mean seconds of an epoch by part "
             "(building batches, forward pass with the loss, backward pass, optimiser step, validation on 2,000 sequences).", "",
             "| model | epochs | targets / epoch | s / epoch | batches | forward | backward | step | validation | best epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, history in histories.items():
        kind, seed = key.split("/")
        if seed != "0" or not history:
            continue
        prof = [h.get("profile", {}) for h in history]
        mean = lambda f: float(np.mean([p.get(f, 0.0) for p in prof]))  # noqa: E731
        best = max(history, key=lambda h: h["val_ndcg10_full"])["epoch"]
        lines.append(f"| {KINDS.get(kind, kind)} | {len(history)} | {int(np.mean([h['targets'] for h in history])):,} | {np.mean([h['seconds'] for h in history]):.0f} | "
                     + " | ".join(f"{mean(f):.1f}" for f in ("batches", "forward", "backward", "step", "validation")) + f" | {best} |")
    return lines + [""]


def markdown(results: dict, context: dict, histories: dict = None) -> str:
    head = "| model | P@10 (full) | R@10 (full) | NDCG@10 (full) | HR@10 (full) | P@10 | R@10 | NDCG@10 | HR@10 |"
    sep = "|" + "---|" * 9
    table = [head, sep] + [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows_of(results)]
    va = results.get(KINDS["bilstm-va"], [])
    no = results.get(KINDS["bilstm"], [])
    real = context.get("real", False)
    data_kind = "real logs with a proxy emotion" if real else "simulated data"
    verdict = ""
    if va and no:
        a = np.mean([r["sampled"]["ndcg"] for r in va])
        b = np.mean([r["sampled"]["ndcg"] for r in no])
        fa = np.mean([r["full"]["ndcg"] for r in va])
        fb = np.mean([r["full"]["ndcg"] for r in no])
        verdict = (f"On these {data_kind} the emotion-conditioned Bi-LSTM (V-A embedding) reaches NDCG@10 {fa:.4f} over the full catalogue "
                   f"and {a:.4f} sampled, against {fb:.4f} and {b:.4f} for the same model without emotion: "
                   f"{'better' if a > b and fa > fb else 'not better on both protocols'}.")
    if real:
        about = ("**The interactions are real listening logs; the emotion is a proxy.** The logs carry no facial emotion, so every model "
                 "that takes one is given the proxy of `training/emotionmuse_train/proxy.py` (the valence-arousal of the last 3 tracks "
                 "with noise, as seven probabilities): what an emotion row gains here is what that proxy carries, not what a camera would.")
    else:
        about = ("**The interaction data are simulated.** No real listening log with emotional context is available to this project, "
                 "so users, emotions and plays come from the documented simulator in `training/emotionmuse_train/simulate.py`, "
                 "in which the choice of a track depends on the user's taste *and*, by construction, on the match between the "
                 "track's valence-arousal label and the user's current emotion. A model that conditions on emotion is therefore "
                 "expected to gain here; what the table shows is that the implementation can learn and use that signal, with the "
                 "paper's architecture and protocol, not that emotion-aware recommendation helps real listeners, and not how large "
                 "any gain would be on real data. The paper's figures (P@10 0.791, NDCG@10 0.813 on MSD/Last.fm) are not comparable.")
    loss = context.get("loss", "bpr")
    objective = ("sampled softmax with the logQ correction (1,024 shared negatives drawn by training play count ** 0.75; GRU4Rec and SASRec "
                 "learn every position of a sequence in one pass, the Bi-LSTMs one target per row; the catalogue-sized output only at evaluation; "
                 f"BPR-MF keeps BPR with {context['negatives']} uniform negatives)") if loss == "sampled" else ("cross-entropy of the next track against the whole catalogue (softmax; BPR-MF keeps BPR with "
                 f"{context['negatives']} uniform negatives)" if loss == "softmax" else f"BPR with {context['negatives']} uniform negatives per positive")
    lines = [
        "# EmotionMuse recommendation model: report",
        "",
        about,
        "",
        f"- Catalogue: {context['catalogue']}",
        f"- Valence-arousal labels: {context['labels']}",
        f"- Music emotion embeddings: {context['autoencoder']}",
        f"- Interactions: {context['interactions']}",
        f"- Split: leave-one-out per sequence (last play = test, second-to-last = validation, the rest train), the same for every row.",
        f"- Protocol: *full* ranks the held-out item among the whole catalogue minus the sequence's history (first); *sampled* ranks it "
        f"among 99 uniformly sampled tracks never played in that sequence (the paper's protocol). With one held-out item, R@10 = HR@10 and P@10 = HR@10 / 10.",
        f"- Seeds: {context['seeds']} (model initialisation and training sampling); cells are mean ± standard deviation over seeds.",
        f"- Training: {objective}, Adam {context.get('lr', 5e-4):g} (BPR-MF 5e-3), dropout 0.3, batch {context.get('batch', 256)}, "
        f"{context['targets']} training targets per sequence and epoch, early stopping on validation NDCG@10 (full catalogue) with patience {context['patience']}, at most {context['max_epochs']} epochs; "
        f"the emotion models add the compatibility term with beta = 0.1.",
        *tuning_lines(context),
        f"- Reranking: final = lambda * preference (min-max over the top-100) + (1 - lambda) * compatibility, compatibility = "
        f"(1 + cos(music emotion embedding, emotion embedding)) / 2, applied to the top 100 of the V-A model and of the served model (its candidates, the V-A model's emotion embedding).",
        f"- Machine: {context['machine']}; total time {context['minutes']:.0f} min.",
        "",
        *table,
        "",
        verdict,
        "",
        *findings(results),
        "",
        *serving_lines(context),
        *profile_lines(histories or {}),
        "![NDCG@10 per model](report.svg)",
        "",
    ]
    return "\n".join(lines)


def svg(results: dict) -> str:
    names = list(results)
    width, left, bar_h, gap = 900, 330, 11, 8
    height = 40 + len(names) * (2 * bar_h + gap) + 30
    best = max(max(np.mean([r["sampled"]["ndcg"] for r in runs]), np.mean([r["full"]["ndcg"] for r in runs])) for runs in results.values()) or 1
    scale = (width - left - 60) / best
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"><rect width="100%" height="100%" fill="white"/>',
             '<text x="10" y="20" font-family="sans-serif" font-size="14">NDCG@10 per model (mean over seeds): sampled (blue) and full catalogue (orange)</text>']
    y = 40
    for name in names:
        runs = results[name]
        s = float(np.mean([r["sampled"]["ndcg"] for r in runs]))
        f = float(np.mean([r["full"]["ndcg"] for r in runs]))
        parts.append(f'<text x="{left - 8}" y="{y + bar_h + 4}" font-family="sans-serif" font-size="11" text-anchor="end">{name}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{s * scale:.1f}" height="{bar_h}" fill="#1f77b4"/><text x="{left + s * scale + 4:.1f}" y="{y + 9}" font-size="9" font-family="sans-serif">{s:.4f}</text>')
        parts.append(f'<rect x="{left}" y="{y + bar_h}" width="{f * scale:.1f}" height="{bar_h}" fill="#ff7f0e"/><text x="{left + f * scale + 4:.1f}" y="{y + bar_h + 9}" font-size="9" font-family="sans-serif">{f:.4f}</text>')
        y += 2 * bar_h + gap
    parts.append("</svg>\n")
    return "".join(parts)
