#!/usr/bin/env python3
"""Builds the catalogue and its labels, simulates interactions, trains the emotion-conditioned
Bi-LSTM, its baselines and ablations over several seeds, evaluates them, exports the serving
model, and writes the report. One command:

    python3 training/run.py                    # full: whole catalogue, 5,000 users, 3 seeds
    python3 training/run.py --smoke            # minutes: small catalogue, few users, 1 seed
    python3 training/run.py --size small       # the small model for tests and the demo
"""
import argparse
import json
import math
import multiprocessing
import os
import platform
import shutil
import sys
import time

# One BLAS/OpenMP thread per training process: on this 2-core machine a Bi-LSTM step with two
# threads took 0.82 s against 0.16 s with one, so the cores go to parallel jobs instead.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emotionmuse_train.autoencoder import train_embeddings  # noqa: E402
from emotionmuse_train.catalogue import load_catalogue, subset  # noqa: E402
from emotionmuse_train.export import export, export_emotion, export_neighbours, write_catalogue_files  # noqa: E402
from emotionmuse_train.hybrid import Hybrid  # noqa: E402
from emotionmuse_train.knn import ItemKnn, RecencyItemKnn, SessionKnn  # noqa: E402
from emotionmuse_train.labels import MOOD_VA, propagate  # noqa: E402
from emotionmuse_train.logs import FORMATS, LogFormatError, load_sequences  # noqa: E402
from emotionmuse_train.proxy import proxy_emotions  # noqa: E402
from emotionmuse_train.report import markdown, svg  # noqa: E402
from emotionmuse_train.simulate import simulate  # noqa: E402
from emotionmuse_train.models import N_HISTORY  # noqa: E402
from emotionmuse_train.train import KINDS, LOSSES, NEIGHBOURHOOD, NOT_SERVED, build_model, evaluate, popularity_scores, prepare, train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RERANK_LAMBDAS = (0.3, 0.5, 0.7, 0.9)
BPR_MF_LR = 5e-3
PACK_ABOVE = 10_000  # exports over more tracks are packed (emotionmuse_train/pack.py)
_JOB_CONTEXT = None  # (data, training options, threads): set before the pool forks


def _train_job(job):
    """Trains one (model, seed, settings) and evaluates it on validation and test; runs in a
    forked worker that shares the data. A tuning trial is seed 0: the chosen one stands as
    that seed's final run."""
    kind, seed, settings, trial = job
    data, options, threads = _JOB_CONTEXT
    torch.set_num_threads(threads)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    # BPR-MF's own default learning rate (its embeddings learn nothing at the sequence models' rate)
    deadline = time.time() + options["job_seconds"] if options["job_seconds"] else 0.0
    settings = {**({"lr": BPR_MF_LR} if kind == "bpr-mf" else {}), **settings}
    model, history = train(kind, data, seed, log=log, deadline=deadline, **{**{k: v for k, v in options.items() if k not in ("job_seconds", "test_users")}, **settings})
    val = evaluate(model, data, "val", max_users=options["test_users"])
    metrics = evaluate(model, data, "test", max_users=options["test_users"], rerank=RERANK_LAMBDAS if kind == "bilstm-va" else ())
    log(f"  {'tuning ' if trial else ''}{KINDS[kind]} seed {seed} {settings}: validation NDCG@10 full {val['full']['ndcg']:.4f}; test sampled {metrics['sampled']}, full {metrics['full']}")
    return {"val": val, "test": metrics, "history": history, "state": model.state_dict() if kind not in NOT_SERVED else None}


# Tried on the validation split with seed 0 when --tune is given; the best by full-catalogue
# NDCG@10 trains every seed. Epochs are tuned by early stopping in every trial. The sequence
# models train with the full softmax (every other track is a negative), so the number of
# negatives applies to BPR-MF only. The history length is how many of the last tracks a sequence
# model reads (the served input stays 50 wide; a shorter model reads its end).
TUNE_GRID = {
    "item-knn": [{"window": w, "recent": r} for w in (2, 5, 10) for r in (3, 5, 10)],
    "bpr-mf": [{"lr": lr, "negatives": n} for lr in (2e-3, 5e-3, 1e-2) for n in (4, 16)],
    "sequence": [{"lr": lr, "history_length": h} for lr in (1e-3, 2e-3) for h in (20, 50)],
    # always tuned (each trial is one pass over the data); recent: the history's last plays used
    "item-knn-recency": [{"window": w, "alpha": a, "decay": d, "recent": 20, "neighbours": 100} for w in (3, 10) for a in (0.5, 0.75) for d in (0.85, 1.0)],
    "sknn": [{"k": k, "recent": 50} for k in (50, 100, 200)],
    "vsknn": [{"k": k, "recent": 50, "decay": d, "idf": True} for k in (100, 200) for d in (0.8, 0.9)],
    # the weight of the sequence model's normalised score against the neighbourhood model's
    "hybrid": [{"weight": w} for w in (0.25, 0.5, 0.75)],
}


def build_neighbourhood(kind: str, data, settings: dict):
    if kind == "item-knn-recency":
        return RecencyItemKnn(data.n_items, data.items, **settings)
    return SessionKnn(data.n_items, data.items, **settings)


def _run_pool(jobs, processes):
    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(min(processes, len(jobs))) as pool:
            return pool.map(_train_job, jobs, chunksize=1)
    return [_train_job(j) for j in jobs]


SIZES = {
    "full": {"catalogue": 0, "users": 5000, "seeds": 3, "max_epochs": 6, "targets": 16, "patience": 2, "batch": 128},
    "small": {"catalogue": 3000, "users": 1500, "seeds": 3, "max_epochs": 10, "targets": 24, "patience": 3, "batch": 128},
    "smoke": {"catalogue": 1000, "users": 200, "seeds": 1, "max_epochs": 1, "targets": 2, "patience": 1, "batch": 64},
}


class WithEmotion:
    """A model's scores with the V-A Bi-LSTM's emotion embedding, for reranking any model."""

    def __init__(self, model, va_model):
        self.model, self.va_model = model, va_model

    def score_all(self, hist, mask, probs, user=None):
        return self.model.score_all(hist, mask, probs, user)[0], self.va_model.emotion(probs)


def select_served(servable: dict, with_hybrid: bool, data, results: dict, tuning: list, chosen: dict, test_users: int, log) -> dict:
    """The model the recommender serves: the best by validation NDCG@10 (full catalogue) among every
    servable model and the hybrid of the best neighbourhood and the best sequence model (its
    weight tuned on validation too). Returns what the card records, and the models to export."""
    by_val = lambda group: max(group, key=lambda k: servable[k]["val"]) if group else None  # noqa: E731
    seq = by_val([k for k in servable if k not in NEIGHBOURHOOD])
    nb = by_val([k for k in servable if k in NEIGHBOURHOOD])
    validation = {k: v["val"] for k, v in servable.items()}
    weight = None
    if with_hybrid and seq and nb:
        trials = []
        for t in TUNE_GRID["hybrid"]:
            v = evaluate(Hybrid(servable[nb]["model"], servable[seq]["model"], t["weight"]), data, "val", max_users=test_users)["full"]["ndcg"]
            tuning.append({"model": KINDS["hybrid"], "settings": {**t, "neighbourhood": nb, "sequence": seq}, "val_ndcg10_full": v})
            trials.append((t, v))
        t, validation["hybrid"] = max(trials, key=lambda x: x[1])
        weight = t["weight"]
        chosen["hybrid"] = {**t, "neighbourhood": nb, "sequence": seq}
        results[KINDS["hybrid"]] = [evaluate(Hybrid(servable[nb]["model"], servable[seq]["model"], weight), data, "test", max_users=test_users)]
        log(f"  {KINDS['hybrid']} ({nb} + {seq}, weight {weight}; validation {validation['hybrid']:.4f}): {results[KINDS['hybrid']][0]}")
    if not validation:
        return {"model": None}
    model = max(validation, key=validation.get)
    kind = "hybrid" if model == "hybrid" else "neighbourhood" if model in NEIGHBOURHOOD else "sequence"
    scorer = Hybrid(servable[nb]["model"], servable[seq]["model"], weight) if kind == "hybrid" else servable[model]["model"]
    log(f"served: {model} (validation NDCG@10 full {validation[model]:.4f}; " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(validation.items(), key=lambda x: -x[1])) + ")")
    return {"model": model, "kind": kind, "sequence": seq, "neighbourhood": nb, "weight": weight, "validation": validation, "scorer": scorer,
            "sequence_model": servable[seq]["model"] if seq else None, "neighbourhood_model": servable[nb]["model"] if nb else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="full", help="preset (default full)")
    ap.add_argument("--smoke", action="store_true", help="same as --size smoke")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "music"), help="folder with catalogue/ and mood-reference/")
    ap.add_argument("--users", type=int, help="simulated users (default by size)")
    ap.add_argument("--seeds", type=int, help="training seeds (default by size; 1 with --interactions)")
    ap.add_argument("--test-users", type=int, default=20_000, help="test on at most this many sequences, evenly spread (default 20,000), the same for every model")
    ap.add_argument("--max-epochs", type=int, help="at most this many epochs per model (default: 30 with a time budget, else by size)")
    ap.add_argument("--targets-per-user", type=int, help="training targets drawn per user and epoch")
    ap.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    ap.add_argument("--stay", type=float, default=0.85, help="simulator: probability that the emotional state stays at each play")
    ap.add_argument("--pop-weight", type=float, default=0.5, help="simulator: weight of the popularity prior in a user's taste")
    ap.add_argument("--batch", type=int, help="training batch size (default by size)")
    ap.add_argument("--loss", choices=LOSSES, default="sampled", help="training loss of the sequence models: sampled (default: sampled softmax with the logQ correction, 1,024 shared negatives drawn by play count ** 0.75; GRU4Rec and SASRec learn every position of a sequence at once), softmax (cross-entropy over the whole catalogue) or bpr (the paper's, 4 uniform negatives); BPR-MF always uses bpr")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the sequence models (default 1e-3; --tune tries others)")
    ap.add_argument("--tune", nargs="?", const="all", help="tune on the validation split first (seed 0; grids in TUNE_GRID), then train every seed with the best settings: every model, or a comma-separated list (e.g. item-knn,bpr-mf)")
    ap.add_argument("--minutes", type=float, help="time budget of the whole run: every training job gets an equal share of what is left after loading and gets stopped there, keeping its best epoch so far (default: 80 with --interactions, none otherwise)")
    ap.add_argument("--models", default=",".join(KINDS), help="comma-separated subset of: " + ", ".join(KINDS))
    ap.add_argument("--interactions", help="real listening logs instead of simulated users: a file, folder or glob (training/emotionmuse_train/logs.py)")
    ap.add_argument("--format", choices=FORMATS, default="csv", help="format of --interactions (default csv: sequence_id, position, track_uri)")
    ap.add_argument("--gap-minutes", type=float, default=30, help="timestamped logs: a longer gap starts a new session")
    ap.add_argument("--min-ms", type=int, default=30_000, help="timestamped logs: plays shorter than this are dropped")
    ap.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None, help=f"pack the export (int8 catalogue tensors, rebuilt at first start; default: when the catalogue has over {PACK_ABOVE:,} tracks)")
    ap.add_argument("--out", help="output folder (default models/recommender-<size>; the report goes beside it)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training job (default 1)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="models trained at once, in separate processes (default: the number of cores)")
    args = ap.parse_args()
    size = "smoke" if args.smoke else args.size
    preset = SIZES[size]
    users = args.users or preset["users"]
    seeds = args.seeds or (1 if args.interactions else preset["seeds"])
    minutes = args.minutes if args.minutes is not None else (80.0 if args.interactions else 0.0)
    # With a time budget, epochs are capped by it: up to 30 (the sampled loss makes an epoch of
    # GRU4Rec or SASRec seconds long), each model stopping early on validation.
    max_epochs = args.max_epochs or (30 if minutes else preset["max_epochs"])
    targets = args.targets_per_user or preset["targets"]
    patience = args.patience or preset["patience"]
    batch = args.batch or preset["batch"]
    out = args.out or os.path.join(ROOT, "models", f"recommender-{size}")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(args.threads)
    started = time.time()
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    full_cat = load_catalogue(os.path.join(args.data, "catalogue"))
    log(f"catalogue: {len(full_cat)} distinct tracks with {full_cat.raw.shape[1]} features")
    labels_full = propagate(full_cat, os.path.join(args.data, "mood-reference", "data_moods.csv"))
    log(f"labels: {labels_full.passed} tracks pass the cosine gate, {labels_full.fallback} use the fallback")
    cat, va, gated = full_cat, labels_full.va, labels_full.gated
    real = None
    if args.interactions:
        try:
            sequences, real = load_sequences(args.interactions, args.format, full_cat, gap_minutes=args.gap_minutes, min_ms=args.min_ms, min_length=3)
        except (LogFormatError, FileNotFoundError) as e:
            print(f"error: --interactions {args.interactions} (--format {args.format}): {e}", file=sys.stderr)
            return 2
        log(f"interactions: {real.plays} plays in {args.interactions} ({args.format}), {real.short} under {args.min_ms} ms dropped, match rate {real.match_rate:.1%} ({real.by_uri} by Spotify id, {real.by_name} by artist and title, {real.unmatched} unmatched), {len(sequences)} sequences of 3 plays or more")
        if not sequences:
            ap.error(f"no sequence of 3 or more catalogue tracks in {args.interactions}; unmatched for example: {real.examples_unmatched}")
    if preset["catalogue"]:
        rng = np.random.default_rng(11)
        if real is not None:
            # every track the logs play, then a seeded sample up to the preset's size
            used = np.unique(np.concatenate(sequences))
            rest = np.setdiff1d(np.arange(len(full_cat)), used)
            keep = np.concatenate([used, rng.choice(rest, size=max(0, min(len(rest), preset["catalogue"] - len(used))), replace=False)])
        else:
            keep = rng.choice(len(full_cat), size=preset["catalogue"], replace=False)
        keep.sort()
        cat, va, gated = subset(full_cat, keep), labels_full.va[keep], labels_full.gated[keep]
        if real is not None:
            position = {int(old): new for new, old in enumerate(keep)}
            sequences = [np.array([position[int(i)] for i in seq]) for seq in sequences]
    music_emb, mse = train_embeddings(cat.z, seed=5)
    log(f"music emotion embeddings: 64-d, reconstruction MSE {mse:.4f}")

    if real is None:
        sim = simulate(cat.z, va, users=users, seed=2026, stay=args.stay, pop_weight=args.pop_weight)
        n_plays = sum(len(s) for s in sim.items)
        log(f"simulated {users} users, {n_plays} completed plays, {sim.skips} skips")
        data = prepare(len(cat), sim.items, sim.emotions, music_emb)
        interactions = f"{users} simulated users, {n_plays} completed plays ({n_plays / users:.0f} per user), {sim.skips} skipped plays (not in histories); simulator: emotional state stays with probability {args.stay} per play, popularity weight {args.pop_weight}; emotion: the simulated faces' probabilities"
    else:
        items = [np.asarray(seq, dtype=np.int64) for seq in sequences]
        data = prepare(len(cat), items, proxy_emotions(items, va), music_emb)
        n_plays = sum(len(s) for s in items)
        interactions = (f"real logs: {args.interactions} ({args.format}), {real.plays} plays, {real.short} under {args.min_ms} ms dropped, match rate {real.match_rate:.1%} "
                        f"({real.by_uri} by Spotify id, {real.by_name} by normalised artist and title, {real.unmatched} unmatched), {len(items)} sequences (sessions cut at {args.gap_minutes:g} min), {n_plays} plays in them; "
                        "emotion: a proxy, the valence-arousal of the last 3 tracks with noise 0.1 as seven probabilities (training/emotionmuse_train/proxy.py)")
    pop = popularity_scores(data)

    results, histories, best_va = {}, {}, None
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    if "popularity" in kinds:
        results[KINDS["popularity"]] = [evaluate(None, data, "test", max_users=args.test_users, pop=pop)]
        log(f"  {KINDS['popularity']}: {results[KINDS['popularity']][0]}")
    tuning, chosen = [], {}
    tuned = set(kinds if args.tune == "all" else [k.strip() for k in (args.tune or "").split(",") if k.strip()])
    if tuned - set(KINDS):
        ap.error(f"--tune: unknown model(s) {', '.join(sorted(tuned - set(KINDS)))}")
    if "item-knn" in kinds:
        knn_settings = {"window": 5, "recent": 5}
        if "item-knn" in tuned:
            trials = [(t, evaluate(ItemKnn(data.n_items, data.items, **t), data, "val", max_users=args.test_users)["full"]["ndcg"]) for t in TUNE_GRID["item-knn"]]
            tuning += [{"model": KINDS["item-knn"], "settings": t, "val_ndcg10_full": v} for t, v in trials]
            knn_settings = max(trials, key=lambda x: x[1])[0]
            chosen["item-knn"] = knn_settings
        results[KINDS["item-knn"]] = [evaluate(ItemKnn(data.n_items, data.items, **knn_settings), data, "test", max_users=args.test_users)]
        log(f"  {KINDS['item-knn']} {knn_settings}: {results[KINDS['item-knn']][0]}")
    # Every servable model with its validation NDCG@10 (full): the best one is exported and served.
    servable = {}
    for kind in [k for k in kinds if k in NEIGHBOURHOOD]:
        best = None
        for t in TUNE_GRID[kind]:
            model = build_neighbourhood(kind, data, t)
            v = evaluate(model, data, "val", max_users=args.test_users)["full"]["ndcg"]
            tuning.append({"model": KINDS[kind], "settings": t, "val_ndcg10_full": v})
            if best is None or v > best[1]:
                best = (model, v, t)
        model, v, chosen[kind] = best
        servable[kind] = {"model": model, "val": v, "settings": chosen[kind]}
        results[KINDS[kind]] = [evaluate(model, data, "test", max_users=args.test_users)]
        log(f"  {KINDS[kind]} {chosen[kind]} (validation {v:.4f}): {results[KINDS[kind]][0]}")
    trained = [k for k in kinds if k not in ("popularity", "item-knn", "hybrid") and k not in NEIGHBOURHOOD]
    global _JOB_CONTEXT
    trials = sorted(((k, 0, t, True) for k in trained if k in tuned for t in TUNE_GRID["bpr-mf" if k == "bpr-mf" else "sequence"]), key=lambda j: not j[0].startswith("bilstm"))
    job_seconds = 0.0
    if minutes:
        # Equal shares of what is left, one round of --jobs at a time; 15% kept for each job's
        # validation and test evaluations after training, the report and the export.
        rounds = math.ceil(len(trials) / args.jobs) + math.ceil(sum(seeds - (1 if k in tuned else 0) for k in trained) / args.jobs)
        left = minutes * 60 - (time.time() - started)
        job_seconds = max(30.0, 0.85 * left / max(rounds, 1))
        log(f"time budget: {minutes:g} min in all, {left / 60:.1f} min left for {rounds} round(s) of training: each job stops after {job_seconds / 60:.1f} min")
    _JOB_CONTEXT = (data, dict(max_epochs=max_epochs, patience=patience, targets_per_user=targets, batch=batch, loss=args.loss, lr=args.lr, job_seconds=job_seconds, test_users=args.test_users), args.threads)
    by_job = {}
    if trials:
        log(f"tuning: {len(trials)} trials on the validation split (seed 0)")
        for (kind, _, settings, _), done in zip(trials, _run_pool(trials, args.jobs)):
            score = done["val"]["full"]["ndcg"]
            tuning.append({"model": KINDS[kind], "settings": settings, "val_ndcg10_full": score, "epochs": len(done["history"])})
            if kind not in chosen or score > by_job[(kind, 0)]["val"]["full"]["ndcg"]:
                chosen[kind], by_job[(kind, 0)] = settings, done
    # Bi-LSTMs first: they take longest, so the pool ends with the quick baselines.
    jobs = sorted(((k, s, chosen.get(k, {}), False) for k in trained for s in range(seeds) if (k, s) not in by_job), key=lambda j: (not j[0].startswith("bilstm"), j[1]))
    by_job.update({(j[0], j[1]): r for j, r in zip(jobs, _run_pool(jobs, args.jobs))})
    for kind in kinds:
        for seed in range(seeds) if kind in trained else ():
            done = by_job[(kind, seed)]
            metrics, history, state = done["test"], done["history"], done["state"]
            results.setdefault(KINDS[kind], []).append({"sampled": metrics["sampled"], "full": metrics["full"]})
            for lam in RERANK_LAMBDAS if kind == "bilstm-va" else ():
                results.setdefault(f"{KINDS[kind]} + reranking, lambda {lam}", []).append(metrics[f"rerank-{lam}"])
            histories[f"{kind}/{seed}"] = history
            best_val = max(h["val_ndcg10_full"] for h in history)
            if kind not in NOT_SERVED and (kind not in servable or done["val"]["full"]["ndcg"] > servable[kind]["val"]):
                model = build_model(kind, data.n_items, len(data.items))
                model.load_state_dict(state)
                model.history = chosen.get(kind, {}).get("history_length", N_HISTORY)
                servable[kind] = {"model": model.eval(), "val": done["val"]["full"]["ndcg"], "seed": seed}
            if kind == "bilstm-va" and (best_va is None or best_val > best_va[1]):
                model = build_model(kind, data.n_items, len(data.items))
                model.load_state_dict(state)
                model.history = chosen.get(kind, {}).get("history_length", N_HISTORY)
                best_va = (model.eval(), best_val, seed)

    serving = select_served(servable, "hybrid" in kinds, data, results, tuning, chosen, args.test_users, log)
    if best_va is not None and serving["model"] != "bilstm-va":
        # The emotion rerank applies to any served model: its candidates, the V-A model's embedding.
        served = WithEmotion(serving["scorer"], best_va[0])
        metrics = evaluate(served, data, "test", max_users=args.test_users, rerank=RERANK_LAMBDAS)
        for lam in RERANK_LAMBDAS:
            results[f"{KINDS[serving['model']]} + reranking, lambda {lam}"] = [metrics[f"rerank-{lam}"]]

    context = {
        "serving": {k: v for k, v in serving.items() if k not in ("scorer", "sequence_model", "neighbourhood_model")} if serving["model"] else None,
        "catalogue": f"{len(cat)} tracks ({'all' if not preset['catalogue'] else 'a seeded sample'} of {len(full_cat)} distinct Spotify tracks in ../shared/data/music/catalogue), 13 features z-scored; ids are Spotify track ids, indices follow their sorted order",
        "labels": f"{labels_full.passed} of {len(full_cat)} tracks pass the cosine gate 0.75 (k = 5, distance-weighted, L2-normalised z-scored features, 12 features shared with the reference set); the other {labels_full.fallback} take their own Spotify valence and energy as valence and arousal. Mood coordinates: " + ", ".join(f"{k} {v}" for k, v in MOOD_VA.items()),
        "autoencoder": f"tied-weight autoencoder 13 -> 64 (tanh), reconstruction MSE {mse:.4f} on z-scored features",
        "interactions": interactions,
        "seeds": seeds,
        "loss": args.loss,
        "budget_minutes": minutes,
        "lr": args.lr,
        "negatives": 4,
        "real": real is not None,
        "tuning": tuning,
        "chosen": {KINDS[k]: v for k, v in chosen.items()},
        "max_epochs": max_epochs,
        "patience": patience,
        "targets": targets,
        "batch": batch,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} (CPU), {args.jobs} parallel jobs of {args.threads} thread(s)",
        "minutes": (time.time() - started) / 60,
    }
    report_md = markdown(results, context, histories)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(report_md)
    with open(os.path.join(out, "report.svg"), "w") as f:
        f.write(svg(results))

    served_name = serving["model"] or "none"
    card = {"name": f"emotionmuse-{served_name}-{size}", "version": f"{served_name}-{size}-{time.strftime('%Y%m%d')}", "size": size,
            "items": len(cat), "history": 50, "context": context, "results": results, "training": histories}
    if serving["model"]:
        # The folder holds the best sequence model's graph, the best neighbourhood model's tables
        # and the V-A model's emotion path; card.json's "serving" says which of them is served.
        seq_model, nb_model = serving["sequence_model"], serving["neighbourhood_model"]
        # nothing of an earlier export in the same folder may be served by mistake
        shutil.rmtree(os.path.join(out, "neighbours"), ignore_errors=True)
        for stale in ("emotion.onnx", "scoring.onnx", "scoring-int8.onnx", "parity.json"):
            if os.path.exists(os.path.join(out, stale)):
                os.remove(os.path.join(out, stale))
        packed = seq_model is not None and (args.pack if args.pack is not None else len(cat) > PACK_ABOVE)
        card["serving"] = context["serving"]
        card["export"] = {}
        card["files"] = {"tracks": "tracks.tsv", "music_emb": "music_emb.f32 (float32 little-endian, items x 64)"}
        if seq_model is not None:
            card["export"] = export(seq_model, out, len(cat), card["version"], packed_music_emb=music_emb if packed else None, emotion=best_va[0].emotion if best_va else None)
            card["export"].update(model=serving["sequence"], seed=servable[serving["sequence"]].get("seed"))
            card["files"].update(scoring="scoring.onnx", parity="parity.json")
        if best_va is not None:
            card["export"]["emotion"] = export_emotion(best_va[0].emotion, out)
            card["files"]["emotion"] = "emotion.onnx: probabilities -> emotion embedding (the V-A Bi-LSTM's), for reranking any served model"
        if nb_model is not None:
            # the hybrid with its tuned weight, served or not, for the scorer's parity test
            hybrid = Hybrid(nb_model, seq_model, serving["weight"]) if serving["weight"] is not None else None
            card["export"]["neighbours"] = export_neighbours(nb_model, out, len(cat), nb_model.popularity, hybrid=hybrid)
            card["files"]["neighbours"] = "neighbours/: the neighbourhood model's tables (params.json says which), scored by processors/recommender/neighbours.ts"
        write_catalogue_files(out, cat, va, gated, None if packed else music_emb, np.expm1(pop.numpy()) / max(1.0, float(np.expm1(pop.numpy()).sum())))
        if packed:
            card["files"]["packed"] = "weights.q8 + packed.json: the item embedding, output layer and music embeddings as int8 with row scales; weights.bin and music_emb.f32 are rebuilt from them at the first start (training/emotionmuse_train/pack.py)"
        card["inputs"] = {"history": "int64 [batch, 50]: track index + 1, left-padded with 0", "mask": "float32 [batch, 50]: 1 where a track is", "probabilities": "float32 [batch, 7]: smoothed FER-order probabilities"}
        card["outputs"] = {"top_ids": "int64 [batch, 100]: track indices (history excluded)", "top_scores": "float32 [batch, 100]: preference scores", "emotion_embedding": "float32 [batch, 64]"}
    with open(os.path.join(out, "card.json"), "w") as f:
        json.dump(card, f, indent=1)
    log(f"wrote {out} in {(time.time() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
