"""The markdown report and its SVG plot."""
import numpy as np

from .train import KINDS

METRICS = ["p", "r", "ndcg", "hr"]


def mean_std(values):
    a = np.array(values)
    return f"{a.mean():.3f} ± {a.std():.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def rows_of(results: dict):
    """results[row_name] = list over seeds of {'sampled': {...}, 'full': {...}}"""
    for name, runs in results.items():
        cells = [mean_std([r["sampled"][m] for r in runs]) for m in METRICS] + [mean_std([r["full"][m] for r in runs]) for m in METRICS]
        yield name, cells


def _ndcg(results: dict, name: str, protocol: str = "sampled"):
    runs = results.get(name)
    return float(np.mean([r[protocol]["ndcg"] for r in runs])) if runs else None


def findings(results: dict) -> list:
    """Plain sentences read off the table: emotion inputs in order, reranking, the best row."""
    out = []
    inputs = [(KINDS[k], _ndcg(results, KINDS[k])) for k in ("bilstm-onehot", "bilstm-soft", "bilstm-va")]
    inputs = sorted([x for x in inputs if x[1] is not None], key=lambda x: -x[1])
    if len(inputs) > 1:
        out.append("- Emotion inputs, best first by sampled NDCG@10: " + ", ".join(f"{n} ({v:.3f})" for n, v in inputs) + ".")
    base = _ndcg(results, KINDS["bilstm-va"])
    reranked = [(name, _ndcg(results, name)) for name in results if name.startswith(KINDS["bilstm-va"] + " + reranking")]
    if base is not None and reranked:
        better = [n.rsplit(" ", 1)[-1] for n, v in reranked if v > base + 1e-9]
        values = ", ".join(f"{n.rsplit(' ', 1)[-1]}: {v:.3f}" for n, v in reranked)
        out.append(f"- Emotion-compatibility reranking of the V-A model (sampled NDCG@10 {base:.3f} without it; by lambda {values}) "
                   + (f"is higher only at lambda {', '.join(better)}." if better else "is not higher at any lambda tried."))
    best = max(results, key=lambda n: _ndcg(results, n))
    out.append(f"- Best row by sampled NDCG@10: {best} ({_ndcg(results, best):.3f}); popularity: {_ndcg(results, KINDS['popularity']) or 0:.3f}.")
    return out


def markdown(results: dict, context: dict) -> str:
    head = "| model | P@10 | R@10 | NDCG@10 | HR@10 | P@10 (full) | R@10 (full) | NDCG@10 (full) | HR@10 (full) |"
    sep = "|" + "---|" * 9
    table = [head, sep] + [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows_of(results)]
    va = results.get(KINDS["bilstm-va"], [])
    no = results.get(KINDS["bilstm"], [])
    verdict = ""
    if va and no:
        a = np.mean([r["sampled"]["ndcg"] for r in va])
        b = np.mean([r["sampled"]["ndcg"] for r in no])
        fa = np.mean([r["full"]["ndcg"] for r in va])
        fb = np.mean([r["full"]["ndcg"] for r in no])
        verdict = (f"On these simulated data the emotion-conditioned Bi-LSTM (V-A embedding) reaches NDCG@10 {a:.3f} (sampled) "
                   f"and {fa:.3f} (full catalogue), against {b:.3f} and {fb:.3f} for the same model without emotion: "
                   f"{'better' if a > b and fa > fb else 'not better on both protocols'}.")
    lines = [
        "# EmotionMuse recommendation model: report",
        "",
        "**The interaction data are simulated.** No real listening log with emotional context is available to this project, "
        "so users, emotions and plays come from the documented simulator in `training/emotionmuse_train/simulate.py`, "
        "in which the choice of a track depends on the user's taste *and*, by construction, on the match between the "
        "track's valence-arousal label and the user's current emotion. A model that conditions on emotion is therefore "
        "expected to gain here; what the table shows is that the implementation can learn and use that signal, with the "
        "paper's architecture and protocol, not that emotion-aware recommendation helps real listeners, and not how large "
        "any gain would be on real data. The paper's figures (P@10 0.791, NDCG@10 0.813 on MSD/Last.fm) are not comparable.",
        "",
        f"- Catalogue: {context['catalogue']}",
        f"- Valence-arousal labels: {context['labels']}",
        f"- Music emotion embeddings: {context['autoencoder']}",
        f"- Interactions: {context['interactions']}",
        f"- Split: leave-one-out per user (last completed play = test, second-to-last = validation, the rest train), the same for every row.",
        f"- Protocol: *sampled* ranks the held-out item among 99 uniformly sampled tracks the user never played (the paper's protocol); "
        f"*full* ranks it among the whole catalogue minus the user's history. With one held-out item, R@10 = HR@10 and P@10 = HR@10 / 10.",
        f"- Seeds: {context['seeds']} (model initialisation and training sampling); cells are mean ± standard deviation over seeds.",
        f"- Training: BPR with {context['negatives']} uniform negatives per positive, Adam 5e-4, dropout 0.3, batch {context.get('batch', 256)}, "
        f"{context['targets']} training targets per user and epoch, early stopping on validation NDCG@10 (sampled) with patience {context['patience']}, at most {context['max_epochs']} epochs; "
        f"the emotion models add the compatibility term with beta = 0.1.",
        f"- Reranking: final = lambda * preference (min-max over the top-100) + (1 - lambda) * compatibility, compatibility = "
        f"(1 + cos(music emotion embedding, emotion embedding)) / 2, applied to the V-A model's top 100.",
        f"- Machine: {context['machine']}; total time {context['minutes']:.0f} min.",
        "",
        *table,
        "",
        verdict,
        "",
        *findings(results),
        "",
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
             '<text x="10" y="20" font-family="sans-serif" font-size="14">NDCG@10 per model (mean over seeds): sampled (blue) and full catalogue (orange); simulated data</text>']
    y = 40
    for name in names:
        runs = results[name]
        s = float(np.mean([r["sampled"]["ndcg"] for r in runs]))
        f = float(np.mean([r["full"]["ndcg"] for r in runs]))
        parts.append(f'<text x="{left - 8}" y="{y + bar_h + 4}" font-family="sans-serif" font-size="11" text-anchor="end">{name}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{s * scale:.1f}" height="{bar_h}" fill="#1f77b4"/><text x="{left + s * scale + 4:.1f}" y="{y + 9}" font-size="9" font-family="sans-serif">{s:.3f}</text>')
        parts.append(f'<rect x="{left}" y="{y + bar_h}" width="{f * scale:.1f}" height="{bar_h}" fill="#ff7f0e"/><text x="{left + f * scale + 4:.1f}" y="{y + bar_h + 9}" font-size="9" font-family="sans-serif">{f:.3f}</text>')
        y += 2 * bar_h + gap
    parts.append("</svg>\n")
    return "".join(parts)
