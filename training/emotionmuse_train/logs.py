"""Real listening logs in: sequences of catalogue tracks from the formats teams have.

Every loader yields plays (`read_plays`): who or which playlist, when or where, the Spotify track
id if the log has one, artist, title, how long it played if known. Timestamped plays (everything but playlists) are cut into sessions at a gap of
`gap_minutes` (30) and plays under `min_ms` (30 s) are dropped where their length is known.
A play is matched to the catalogue by its Spotify track id, else by a normalised artist and title
(`match_key`): lower case without accents, bracketed and " - " suffixes ("(feat. X)", "[Live]",
" - Remastered 2011") taken off, "feat." credits taken off, and the version kept apart: a live,
remix, karaoke, cover, acoustic or instrumental version never matches the studio one.

Formats (`--format`):
- `csv`: the interchange format, columns sequence_id, position, track_uri (others ignored);
  position an integer or an ISO time.
- `mpd`: Spotify Million Playlist Dataset slices (mpd.slice.*.json): one sequence per playlist.
- `spotify`: Spotify account-data exports, StreamingHistory*.json (endTime, artistName, trackName,
  msPlayed) and Streaming_History_Audio_*.json (ts, ms_played, spotify_track_uri, master_metadata_*).
- `lastfm1k`: Last.fm 1K, userid-timestamp-artid-artname-traid-traname.tsv.
- `listenbrainz`: ListenBrainz listens, JSON lines (listened_at, user_name, track_metadata).
"""
import csv
import glob
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone

FORMATS = ("csv", "mpd", "spotify", "lastfm1k", "listenbrainz")
VERSION_WORDS = ("live", "remix", "karaoke", "cover", "acoustic", "instrumental")


def _fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s or "")
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    s = s.replace("&", " and ")
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", s)).strip()


def match_key(artist: str, title: str) -> tuple:
    """(artist, title, version): the version holds the words that make another recording."""
    t = (title or "").lower()
    version = tuple(sorted({w for w in VERSION_WORDS if re.search(rf"\b{w}\b", t)}))
    t = re.sub(r"\s*[\(\[][^\)\]]*[\)\]]", " ", title or "")          # (feat. X), [Live], (2011 Remaster)
    t = re.split(r"\s+-\s+", t)[0]                                    # " - Remastered 2011", " - Live at ..."
    t = re.sub(r"\b(feat|ft|featuring)\.?\s.*$", " ", t, flags=re.I)   # "Song feat. X"
    a = re.split(r"\s*(,|;|\bfeat\.?|\bft\.?|\bfeaturing\b|\bwith\b|&|\bx\b)\s*", artist or "", flags=re.I)[0]
    return (_fold(a), _fold(t), version)


def _track_id(uri) -> str | None:
    if not uri:
        return None
    m = re.search(r"(?:spotify:track:|open\.spotify\.com/track/)([A-Za-z0-9]{22})", str(uri))
    return m.group(1) if m else (str(uri) if re.fullmatch(r"[A-Za-z0-9]{22}", str(uri)) else None)


def _time(value) -> float:
    """Seconds since the epoch from an ISO time, "YYYY-MM-DD HH:MM", or a number."""
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return float(s)
    s = s.replace("Z", "+00:00")
    d = datetime.fromisoformat(s) if "T" in s or "+" in s else datetime.strptime(s, "%Y-%m-%d %H:%M")
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()


def _files(path: str, pattern: str) -> list:
    if os.path.isdir(path):
        return sorted(glob.glob(os.path.join(path, "**", pattern), recursive=True))
    return sorted(glob.glob(path)) or [path]


class LogFormatError(ValueError):
    """A listening log that is not in the format it was given as: names the file and what is missing."""


CSV_COLUMNS = ("sequence_id", "position", "track_uri")


def read_plays(path: str, fmt: str):
    """(user or playlist, time or position, track id, artist, title, ms played or None, timestamped) per play."""
    if fmt == "csv":
        for f in _files(path, "*.csv"):
            with open(f, newline="", encoding="utf-8") as h:
                reader = csv.DictReader(h)
                found = [c for c in (reader.fieldnames or [])]
                missing = [c for c in CSV_COLUMNS if c not in found]
                if missing:
                    raise LogFormatError(f"{f}: the csv interchange format needs the columns {', '.join(CSV_COLUMNS)}; "
                                         f"missing {', '.join(missing)}; the file has {', '.join(found) if found else 'no header row'}")
                for line, row in enumerate(reader, start=2):
                    pos = (row["position"] or "").strip()
                    if not pos:
                        raise LogFormatError(f"{f}, line {line}: the position is empty")
                    yield row["sequence_id"], _time(pos), _track_id(row["track_uri"]), "", "", None, not re.fullmatch(r"-?\d+", pos)
    elif fmt == "mpd":
        for f in _files(path, "mpd.slice.*.json"):
            with open(f, encoding="utf-8") as h:
                data = json.load(h)
            if not isinstance(data, dict) or not isinstance(data.get("playlists"), list):
                raise LogFormatError(f"{f}: an MPD slice is a JSON object with a \"playlists\" list")
            for n, p in enumerate(data["playlists"]):
                tracks = p.get("tracks") or []
                # A track without "pos" (trimmed copies drop it) takes its place in the list.
                for i, t in enumerate(tracks):
                    yield f"pl-{p.get('pid', f'{os.path.basename(f)}#{n}')}", float(t.get("pos", i)), _track_id(t.get("track_uri")), t.get("artist_name", ""), t.get("track_name", ""), None, False
    elif fmt == "spotify":
        for f in _files(path, "*.json"):
            name = os.path.basename(f)
            if not (name.startswith("StreamingHistory") or name.startswith("Streaming_History_Audio")):
                continue
            user = os.path.basename(os.path.dirname(os.path.abspath(f))) or "me"
            with open(f, encoding="utf-8") as h:
                entries = json.load(h)
            for e in entries:
                if "endTime" in e:
                    yield user, _time(e["endTime"]) - e.get("msPlayed", 0) / 1000, None, e.get("artistName", ""), e.get("trackName", ""), e.get("msPlayed"), True
                elif e.get("master_metadata_track_name") or e.get("spotify_track_uri"):
                    yield user, _time(e["ts"]) - e.get("ms_played", 0) / 1000, _track_id(e.get("spotify_track_uri")), e.get("master_metadata_album_artist_name") or "", e.get("master_metadata_track_name") or "", e.get("ms_played"), True
    elif fmt == "lastfm1k":
        for f in _files(path, "*.tsv"):
            with open(f, encoding="utf-8", errors="replace") as h:
                for line in h:
                    cols = line.rstrip("\n").split("\t")
                    if len(cols) >= 6:
                        yield cols[0], _time(cols[1]), None, cols[3], cols[5], None, True
    elif fmt == "listenbrainz":
        for f in _files(path, "*.json*"):
            with open(f, encoding="utf-8") as h:
                for line in h:
                    if not line.strip():
                        continue
                    e = json.loads(line)
                    m = e.get("track_metadata", {})
                    info = m.get("additional_info", {}) or {}
                    uri = info.get("spotify_id") or info.get("spotify_track_uri")
                    yield e.get("user_name", "lb"), _time(e["listened_at"]), _track_id(uri), m.get("artist_name", ""), m.get("track_name", ""), None, True
    else:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


@dataclass
class LoadReport:
    plays: int = 0
    short: int = 0
    by_uri: int = 0
    by_name: int = 0
    unmatched: int = 0
    sequences: int = 0
    examples_unmatched: list = field(default_factory=list)

    @property
    def match_rate(self) -> float:
        kept = self.plays - self.short
        return (self.by_uri + self.by_name) / kept if kept else 0.0


def load_sequences(path: str, fmt: str, catalogue, gap_minutes: float = 30, min_ms: int = 30_000, min_length: int = 2):
    """Catalogue-index sequences from a log, and a report of how many plays matched and how."""
    index = {t: i for i, t in enumerate(catalogue.ids)}
    by_name = {}
    for i, (a, t) in enumerate(zip(catalogue.artists, catalogue.titles)):
        by_name.setdefault(match_key(a, t), i)
    rep = LoadReport()
    per_user = {}
    timed_users = set()
    for user, when, track, artist, title, ms, timed in read_plays(path, fmt):
        rep.plays += 1
        if timed:
            timed_users.add(user)
        if ms is not None and ms < min_ms:
            rep.short += 1
            continue
        i = index.get(track) if track else None
        if i is not None:
            rep.by_uri += 1
        else:
            i = by_name.get(match_key(artist, title)) if title else None
            if i is None:
                rep.unmatched += 1
                if len(rep.examples_unmatched) < 5:
                    rep.examples_unmatched.append(f"{artist} - {title}" if title else str(track))
                continue
            rep.by_name += 1
        per_user.setdefault(user, []).append((when, i))
    sequences = []
    for user, plays in per_user.items():
        timed = user in timed_users
        plays.sort(key=lambda p: p[0])
        current, last = [], None
        for when, i in plays:
            if timed and last is not None and when - last > gap_minutes * 60:
                sequences.append(current)
                current = []
            current.append(i)
            last = when
        sequences.append(current)
    sequences = [s for s in sequences if len(s) >= min_length]
    rep.sequences = len(sequences)
    return sequences, rep
