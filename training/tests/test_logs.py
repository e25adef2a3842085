"""The listening-log loaders on the project's own small fixtures (training/tests/fixtures)."""
import os
import sys
import json
import tempfile
import unittest
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from emotionmuse_train.logs import LogFormatError, load_sequences, match_key  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


@dataclass
class Cat:
    ids: list
    titles: list
    artists: list


# index: 0 Mar, 1 Rio, 2 Halo, 3 Noite, 4 Rio (Live)
CAT = Cat(
    ids=["AAAAAAAAAAAAAAAAAAAAA1", "AAAAAAAAAAAAAAAAAAAAA2", "AAAAAAAAAAAAAAAAAAAAA3", "AAAAAAAAAAAAAAAAAAAAA4", "AAAAAAAAAAAAAAAAAAAAA5"],
    titles=["Mar", "Rio", "Halo", "Noite", "Rio - Live"],
    artists=["Ana Sol", "Ana Sol", "Beyoncé", "Zé Luar", "Ana Sol"],
)


class MatchKey(unittest.TestCase):
    def test_normalisation(self):
        self.assertEqual(match_key("Beyoncé feat. Jay-Z", "Halo (feat. Jay-Z)"), match_key("Beyonce", "Halo"))
        self.assertEqual(match_key("Ana Sol", "Mar - Remastered 2011"), match_key("ana sol", "MAR"))
        self.assertEqual(match_key("Zé Luar", "Noite [2019 Remaster]"), match_key("Ze Luar", "Noite"))

    def test_versions_never_match_the_studio_recording(self):
        for title in ("Rio [Live at Lisbon]", "Rio (Karaoke Version)", "Rio - Remix", "Rio (Acoustic)", "Rio (Cover)"):
            self.assertNotEqual(match_key("Ana Sol", title), match_key("Ana Sol", "Rio"), title)
        self.assertEqual(match_key("Ana Sol", "Rio [Live at Lisbon]"), match_key("Ana Sol", "Rio - Live"))


class Loaders(unittest.TestCase):
    def test_csv_positions_and_times(self):
        seqs, rep = load_sequences(os.path.join(HERE, "plays.csv"), "csv", CAT)
        # s1 by position (the unknown track dropped); s2 by time, cut at the 56-minute gap
        self.assertEqual(sorted(seqs), sorted([[0, 1], [2, 0], [1, 3]]))
        self.assertEqual((rep.plays, rep.by_uri, rep.unmatched, rep.sequences), (7, 6, 1, 3))
        self.assertAlmostEqual(rep.match_rate, 6 / 7)

    def test_mpd_playlists_in_position_order(self):
        seqs, rep = load_sequences(HERE, "mpd", CAT, min_length=1)
        self.assertEqual(sorted(seqs), [[0], [0, 1]])
        self.assertEqual((rep.plays, rep.by_uri, rep.unmatched), (4, 3, 1))

    def test_spotify_exports_drop_short_plays_and_match_by_name_or_uri(self):
        seqs, rep = load_sequences(os.path.join(HERE, "spotify-export"), "spotify", CAT)
        self.assertEqual(seqs, [[2, 0, 3]])
        self.assertEqual((rep.plays, rep.short, rep.by_name, rep.by_uri, rep.unmatched), (4, 1, 2, 1, 0))

    def test_lastfm_1k_sessions_and_versions(self):
        seqs, rep = load_sequences(os.path.join(HERE, "userid-timestamp-artid-artname-traid-traname.tsv"), "lastfm1k", CAT)
        # the live version matches the catalogue's live recording; a 9-hour gap starts a session
        self.assertEqual(seqs, [[2, 4, 1], [3, 0]])
        self.assertEqual(rep.by_name, 5)

    def test_listenbrainz_json_lines(self):
        seqs, rep = load_sequences(os.path.join(HERE, "listens.jsonl"), "listenbrainz", CAT)
        self.assertEqual(seqs, [[0, 1]])
        self.assertEqual((rep.by_uri, rep.by_name, rep.unmatched), (1, 1, 1))
        self.assertEqual(rep.examples_unmatched, ["Ana Sol - Rio (Karaoke Version)"])

    def test_csv_with_other_columns_names_the_file_and_the_columns(self):
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "other.csv")
            with open(f, "w") as h:
                h.write("playlist,idx,uri\np1,0,spotify:track:AAAAAAAAAAAAAAAAAAAAA1\n")
            with self.assertRaises(LogFormatError) as e:
                load_sequences(f, "csv", CAT)
            msg = str(e.exception)
            for part in (f, "sequence_id, position, track_uri", "missing sequence_id, position, track_uri", "playlist, idx, uri"):
                self.assertIn(part, msg)

    def test_mpd_tracks_without_pos_take_the_list_order(self):
        with tempfile.TemporaryDirectory() as d:
            slice_ = {"playlists": [{"pid": 7, "tracks": [{"track_uri": f"spotify:track:{CAT.ids[i]}"} for i in (2, 0, 3)]}]}
            with open(os.path.join(d, "mpd.slice.0-0.json"), "w") as h:
                json.dump(slice_, h)
            seqs, rep = load_sequences(d, "mpd", CAT, min_length=1)
            self.assertEqual(seqs, [[2, 0, 3]])
            with open(os.path.join(d, "mpd.slice.0-0.json"), "w") as h:
                json.dump([1, 2], h)
            with self.assertRaises(LogFormatError):
                load_sequences(d, "mpd", CAT)

    def test_unknown_format(self):
        with self.assertRaises(ValueError):
            load_sequences(HERE, "m3u", CAT)


if __name__ == "__main__":
    unittest.main()
