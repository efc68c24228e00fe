"""Parsers: every layout on tiny generated files, hand-checked values, and malformed rows."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import numpy as np
import pytest

from tfrec.data import DataError, parsers


def _expected_genres(files):
    padded = np.full((5, 3), -1)
    for row, (*_, ids) in enumerate(files.movies):
        padded[row, : len(ids)] = ids
    return padded


def test_100k_tables_match_hand_values(tmp_path, files):
    tables = parsers.parse_directory(files.write_100k(tmp_path / "ml"))
    r = tables.ratings
    assert r["user_id"].tolist() == [u for u, *_ in files.ratings]
    assert r["movie_id"].tolist() == [m for _, m, *_ in files.ratings]
    assert r["user_rating"].dtype == np.float32 and r["user_rating"].tolist()[:3] == [5, 3, 4]
    assert r["timestamp"].dtype == np.int64 and r["timestamp"][3] == 300
    m = tables.movies
    assert m["movie_title"].tolist() == [t for _, t, *_ in files.movies]
    assert m["movie_title"][4] == "Café Society, The (1990)"  # latin-1 decoded
    np.testing.assert_array_equal(m["movie_genres"], _expected_genres(files))
    u = tables.users
    assert u["user_gender"].tolist() == [True, False, True]
    assert u["raw_user_age"].tolist() == [24.0, 53.0, 17.0]
    assert u["bucketized_user_age"].tolist() == [18.0, 50.0, 1.0]
    # technician -> technician/engineer (18), other -> other/not specified (11), student (17)
    assert u["user_occupation_label"].tolist() == [18, 11, 17]
    assert u["user_occupation_text"].tolist() == ["technician", "other", "student"]
    assert u["user_zip_code"].tolist() == ["85711", "94043", "T8H1N"]
    assert all(c.dtype.kind == "U" for c in (r["user_id"], m["movie_id"], u["user_zip_code"]))


def test_recbole_layout_gives_the_same_tables_as_grouplens(tmp_path, files):
    official = parsers.parse_directory(files.write_100k(tmp_path / "a"))
    recbole = parsers.parse_directory(files.write_recbole(tmp_path / "b"))
    assert parsers.detect_layout(tmp_path / "b") == "recbole-100k"
    for mine, theirs in zip(recbole, official, strict=True):
        assert sorted(mine) == sorted(theirs)
        for name in mine:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)
            assert mine[name].dtype.kind == theirs[name].dtype.kind, name


def test_recbole_title_keeps_extra_parenthesised_suffix(tmp_path, files):
    directory = files.write_recbole(tmp_path / "b")
    item = directory / "ml-100k.item"
    text = item.read_text().replace("Four Rooms\t1995", "Land Before Time III (1995)\tV")
    item.write_text(text)
    titles = parsers.parse_directory(directory).movies["movie_title"]
    assert titles[2] == "Land Before Time III (1995) (V)"


def test_1m_tables(tmp_path, files):
    tables = parsers.parse_directory(files.write_1m(tmp_path / "ml"))
    assert tables.ratings["user_id"].tolist() == ["10", "10", "11", "11"]
    assert tables.ratings["timestamp"].tolist()[0] == 978300760
    assert tables.movies["movie_title"][2] == "Amélie (2001)"
    np.testing.assert_array_equal(
        tables.movies["movie_genres"], [[2, 3, 4], [0, 15, -1], [4, 14, -1]]
    )
    u = tables.users
    assert u["user_gender"].tolist() == [False, True]
    assert u["bucketized_user_age"].tolist() == [1.0, 56.0]
    assert u["user_occupation_text"].tolist() == ["K-12 student", "self-employed"]
    assert u["user_occupation_label"].tolist() == [17, 16]  # student, self-employed
    assert "raw_user_age" not in u


def test_csv_tables_with_quotes_and_half_stars(tmp_path, files):
    tables = parsers.parse_directory(files.write_csv(tmp_path / "ml"))
    assert tables.users is None
    assert tables.ratings["user_rating"].tolist() == [3.5, 4.0, 0.5]
    assert tables.movies["movie_title"].tolist() == [
        "American President, The (1995)",
        'Dr. "Who" (2005)',
        "Avatar (2009)",
    ]
    np.testing.assert_array_equal(
        tables.movies["movie_genres"], [[4, 7, 14], [20, -1, -1], [0, 11, -1]]
    )


def test_long_ids_are_read_exactly(tmp_path, files):
    directory = files.write_csv(tmp_path / "ml")
    _corrupt(directory / "ratings.csv", "\n10,200,", "\n1234567890123,200,")
    ratings = parsers.parse_directory(directory).ratings
    assert ratings["user_id"].tolist() == ["1", "2", "1234567890123"]
    assert ratings["movie_id"].tolist() == ["10", "10", "200"]


def test_tables_layout_round_trip(tmp_path, files):
    tables = parsers.parse_directory(files.write_100k(tmp_path / "ml"))
    out = tmp_path / "npz"
    out.mkdir()
    assert parsers.save_tables(out, tables) == ["ratings.npz", "movies.npz", "users.npz"]
    again = parsers.parse_directory(out)
    for mine, theirs in zip(again, tables, strict=True):
        for name in theirs:
            np.testing.assert_array_equal(mine[name], theirs[name])


def test_pad_lists():
    padded = parsers.pad_lists(np.array([7, 8, 9]), np.array([2, 0, 1]))
    np.testing.assert_array_equal(padded, [[7, 8], [-1, -1], [9, -1]])


def test_unknown_layout_lists_expected_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"u\.data.*notes\.txt|notes\.txt.*u\.data"):
        parsers.detect_layout(tmp_path)


def _corrupt(path, old, new):
    path.write_text(path.read_text(encoding="latin-1").replace(old, new, 1), encoding="latin-1")


@pytest.mark.parametrize(
    ("file", "old", "new", "pattern"),
    [
        ("u.data", "1\t5\t2\t300", "1\t5\t2", r"u\.data line 4: expected 4 fields"),
        ("u.data", "2\t4\t1\t60", "2\t4\tone\t60", r"u\.data line 6: field user_rating.*'one'"),
        ("u.data", "3\t3\t3\t20", "3\t3\t3\tsoon", r"line 8: field timestamp.*'soon'"),
        ("u.data", "3\t2\t5\t10", "3\t2\tnan\t10", r"line 7: .*user_rating.*'nan'"),
        ("u.user", "|F|", "|X|", r"u\.user line 2: invalid gender.*'X'"),
        ("u.user", "technician", "astronaut", r"u\.user line 1: invalid occupation.*astronaut"),
        ("u.user", "53", "fifty", r"u\.user line 2: invalid age.*'fifty'"),
        ("u.item", "unknown||", "unknown|", r"u\.item line 4: expected 24 fields"),
        ("u.item", "|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n", "|2|0|0|0|0|0|0|0|0|0|0|0"
         "|0|0|0|0|0|0|0\n", r"u\.item line 4: invalid genre flag Unknown.*'2'"),
    ],
)  # fmt: skip
def test_malformed_100k_rows_name_file_line_field_value(tmp_path, files, file, old, new, pattern):
    directory = files.write_100k(tmp_path / "ml")
    _corrupt(directory / file, old, new)
    with pytest.raises(ValueError, match=pattern):
        parsers.parse_directory(directory)


def test_unknown_genre_names_line_and_value(tmp_path, files):
    directory = files.write_1m(tmp_path / "ml")
    _corrupt(directory / "movies.dat", "Action|Sci-Fi", "Action|Space Opera")
    with pytest.raises(ValueError, match=r"movies\.dat line 2: invalid genre.*'Space Opera'"):
        parsers.parse_directory(directory)


def test_1m_bad_age_and_occupation_codes(tmp_path, files):
    directory = files.write_1m(tmp_path / "ml")
    _corrupt(directory / "users.dat", "::56::", "::57::")
    with pytest.raises(ValueError, match=r"users\.dat line 2: invalid age.*'57'"):
        parsers.parse_directory(directory)
    directory = files.write_1m(tmp_path / "ml2")
    _corrupt(directory / "users.dat", "::16::", "::21::")
    with pytest.raises(ValueError, match=r"users\.dat line 2: invalid occupation.*'21'"):
        parsers.parse_directory(directory)


def test_csv_bad_header_and_bad_rating(tmp_path, files):
    directory = files.write_csv(tmp_path / "ml")
    _corrupt(directory / "ratings.csv", "userId,movieId", "user,movie")
    with pytest.raises(ValueError, match=r"ratings\.csv line 1: unexpected header"):
        parsers.parse_directory(directory)
    directory = files.write_csv(tmp_path / "ml2")
    _corrupt(directory / "ratings.csv", "4.0", "4.0.0")
    with pytest.raises(ValueError, match=r"ratings\.csv line 3: field user_rating.*'4\.0\.0'"):
        parsers.parse_directory(directory)


def test_recbole_fractional_timestamp_and_duplicate_movie(tmp_path, files):
    directory = files.write_recbole(tmp_path / "ml")
    _corrupt(directory / "ml-100k.inter", "\t200\n", "\t200.5\n")
    with pytest.raises(ValueError, match=r"ml-100k\.inter line 4: invalid timestamp.*200\.5"):
        parsers.parse_directory(directory)
    directory = files.write_recbole(tmp_path / "ml2")
    _corrupt(directory / "ml-100k.item", "3\tFour Rooms", "2\tFour Rooms")
    with pytest.raises(ValueError, match=r"ml-100k\.item line 4: invalid movie_id.*'2'"):
        parsers.parse_directory(directory)


def test_empty_ratings_file(tmp_path, files):
    directory = files.write_100k(tmp_path / "ml")
    (directory / "u.data").write_text("")
    with pytest.raises(ValueError, match=r"u\.data: contains no data rows"):
        parsers.parse_directory(directory)


# Issue 14 finding 7: rating values are checked against each variant's scale, in every layout.


@pytest.mark.parametrize(
    ("layout", "old", "new", "pattern"),
    [
        ("100k", "2\t4\t1\t60", "2\t4\t-4\t60", r"u\.data line 6: invalid user_rating.*-4\.0"),
        ("100k", "2\t4\t1\t60", "2\t4\t1e6\t60", r"u\.data line 6: .*=1000000\.0.*whole stars 1"),
        ("100k", "3\t3\t3\t20", "3\t3\t9\t20", r"u\.data line 8: invalid user_rating.*9\.0"),
        ("100k", "3\t3\t3\t20", "3\t3\t3.5\t20", r"line 8: .*=3\.5.*whole stars 1 to 5"),
        ("100k", "3\t3\t3\t20", "3\t3\t0\t20", r"line 8: .*=0\.0"),
        ("100k", "3\t3\t3\t20", "3\t3\tinf\t20", r"line 8: .*user_rating.*finite"),
        ("1m", "10::30::3::", "10::30::6::", r"ratings\.dat line 2: invalid user_rating.*6\.0"),
        ("csv", "4.0,", "5.5,", r"ratings\.csv line 3: .*=5\.5.*half stars 0\.5 to 5"),
        ("csv", "4.0,", "0.0,", r"ratings\.csv line 3: .*=0\.0"),
        ("csv", "4.0,", "4.2,", r"ratings\.csv line 3: .*=4\.2"),
        ("recbole", "\t3\t300", "\t7\t300", r"ml-100k\.inter line 3: invalid user_rating.*7\.0"),
    ],
)  # fmt: skip
def test_ratings_off_the_scale_name_file_line_and_value(tmp_path, files, layout, old, new, pattern):
    writer = {"100k": files.write_100k, "1m": files.write_1m, "csv": files.write_csv}
    directory = writer.get(layout, files.write_recbole)(tmp_path / "ml")
    name = {"100k": "u.data", "1m": "ratings.dat", "csv": "ratings.csv"}.get(
        layout, "ml-100k.inter"
    )
    _corrupt(directory / name, old, new)
    with pytest.raises(DataError, match=pattern):
        parsers.parse_directory(directory)


def test_half_stars_and_scale_ends_are_accepted(tmp_path, files):
    directory = files.write_csv(tmp_path / "ml")
    _corrupt(directory / "ratings.csv", "4.0,", "5.0,")
    assert parsers.parse_directory(directory).ratings["user_rating"].tolist() == [3.5, 5.0, 0.5]


# Issue 14 finding 8 (data part): undecodable and NUL bytes name file and line.


def test_non_utf8_byte_names_file_line_and_byte(tmp_path, files):
    directory = files.write_csv(tmp_path / "ml")
    path = directory / "ratings.csv"
    path.write_bytes(path.read_bytes().replace(b"2,10,4.0", b"2,1\xff,4.0"))
    with pytest.raises(DataError, match=r"ratings\.csv line 3: byte 4 \(0xff\) is not valid utf-8"):
        parsers.parse_directory(directory)
    directory = files.write_recbole(tmp_path / "rb")
    path = directory / "ml-100k.item"
    path.write_bytes(path.read_bytes().replace(b"Four Rooms", b"Four R\xe9oms"))
    with pytest.raises(DataError, match=r"ml-100k\.item line 4: byte 9 \(0xe9\).*iconv"):
        parsers.parse_directory(directory)


def test_nul_byte_is_not_silently_dropped(tmp_path, files):
    directory = files.write_100k(tmp_path / "ml")
    path = directory / "u.data"
    path.write_bytes(path.read_bytes().replace(b"3\t2\t5\t10", b"3\x00\t2\t5\t10"))
    with pytest.raises(DataError, match=r"u\.data line 7: contains a NUL byte"):
        parsers.parse_directory(directory)


@pytest.mark.parametrize(
    ("file", "old", "new", "pattern"),
    [
        ("u.data", "3\t2\t5\t10", "x3\t2\t5\t10", r"u\.data line 7: invalid user_id.*'x3'"),
        ("u.data", "3\t2\t5\t10", " 3\t2\t5\t10", r"u\.data line 7: invalid user_id.*' 3'"),
        ("u.data", "3\t2\t5\t10", "\t2\t5\t10", r"u\.data line 7: invalid user_id.*''"),
        ("u.data", "3\t2\t5\t10", "3\t2.0\t5\t10", r"u\.data line 7: invalid movie_id.*'2\.0'"),
        ("u.item", "\n3|Four", "\nthree|Four", r"u\.item line 3: invalid movie_id.*'three'"),
        ("u.user", "\n3|17", "\n-3|17", r"u\.user line 3: invalid user_id.*'-3'"),
        ("u.data", "\t10\n", "\t1_0\n", r"u\.data line 7: field timestamp .*'1_0'"),
    ],
)  # fmt: skip
def test_ids_must_be_decimal_digits(tmp_path, files, file, old, new, pattern):
    directory = files.write_100k(tmp_path / "ml")
    _corrupt(directory / file, old, new)
    with pytest.raises(DataError, match=pattern):
        parsers.parse_directory(directory)


def test_blank_line_with_spaces_is_located(tmp_path, files):
    directory = files.write_100k(tmp_path / "ml")
    _corrupt(directory / "u.data", "2\t4\t1\t60\n", "2\t4\t1\t60\n \n")
    with pytest.raises(DataError, match=r"u\.data line 7: expected 4 fields.*found 1"):
        parsers.parse_directory(directory)


def test_characters_beyond_the_bmp_never_reach_numpys_integer_reader(tmp_path, files):
    # numpy 2.4's loadtxt int64 reader can segfault on e.g. "1\U00020000" (seen in about half
    # of fresh processes): such a character cannot be valid in a ratings file, so it is refused
    # before numpy reads the file.
    directory = files.write_csv(tmp_path / "ml")
    path = directory / "ratings.csv"
    path.write_bytes(path.read_bytes().replace(b"1112484676", "1112484676\U00020000".encode()))
    with pytest.raises(
        DataError, match=r"ratings\.csv line 3: contains a character beyond U\+FFFF"
    ):
        parsers.parse_directory(directory)
