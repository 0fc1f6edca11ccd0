import numpy as np
import pytest

from flowscope.errors import UsageError
from flowscope.geo import physics
from flowscope.geo.physics import (CONSISTENT, FIBRE, IMPOSSIBLE, INTERNET, UNKNOWN, VACUUM, check,
                                   check_detail, haversine_km, max_distance_km, parse_vantage)
from flowscope.geo.pop import pop_location

MILAN = pop_location("MXP")[2:]
FRANKFURT = pop_location("FRA")[2:]
ATLANTA = pop_location("ATL")[2:]


def test_constants():
    assert round(FIBRE, 2) == 99.93
    assert round(INTERNET, 2) == 66.62
    assert round(VACUUM, 2) == 149.90
    assert physics.C_KM_PER_S == 299_792.458


def test_max_distance():
    assert max_distance_km(5.7) == pytest.approx(569.6, abs=0.5)         # "about 570 km"
    assert max_distance_km(5.7, VACUUM) == pytest.approx(854.4, abs=0.5)  # "within 855 km"
    assert max_distance_km(40.7) == pytest.approx(4067, abs=1)
    assert np.allclose(max_distance_km([1, 2]), [FIBRE, 2 * FIBRE])
    with pytest.raises(ValueError):
        max_distance_km(-1)


def test_haversine():
    # "Milan" resolves to Linate (city airport): Milan-Frankfurt ~ 520 km
    assert haversine_km(*parse_vantage("Milan"), *parse_vantage("Frankfurt")) == pytest.approx(520, abs=20)
    assert haversine_km(*MILAN, *FRANKFURT) == pytest.approx(490, abs=5)   # Malpensa is NW of Milan
    assert haversine_km(0, 0, 0, 0) == 0
    d = haversine_km(np.array([MILAN[0], MILAN[0]]), np.array([MILAN[1], MILAN[1]]),
                     np.array([FRANKFURT[0], ATLANTA[0]]), np.array([FRANKFURT[1], ATLANTA[1]]))
    assert d.shape == (2,) and d[1] > 6000


def test_issue_us_location_impossible_from_italy():
    # 157.240.203.62: GeoIP says US, 5.7 ms from an Italian capture (brief §4.1)
    assert check(5.7, *MILAN, *ATLANTA) == IMPOSSIBLE
    assert check(5.7, *MILAN, *MILAN) == CONSISTENT
    det = check_detail(5.7, *MILAN, *FRANKFURT)
    assert det["verdict"] == CONSISTENT and det["within_fibre"] is True
    assert det["fibre_bound_km"] == pytest.approx(570, abs=1)


def test_between_fibre_and_vacuum_is_consistent_but_flagged():
    # Milan-Dublin ~1470 km: 12 ms -> fibre 1199 km < d < vacuum 1799 km
    dub = pop_location("DUB")[2:]
    det = check_detail(12.0, *MILAN, *dub)
    assert det["verdict"] == CONSISTENT and det["within_fibre"] is False


@pytest.mark.parametrize("args", [(None, 45, 9, 40, -80), (float("nan"), 45, 9, 40, -80),
                                  (-1, 45, 9, 40, -80), (5, 95, 9, 40, -80), (5, 45, 9, None, 1),
                                  ("x", 45, 9, 40, 1)])
def test_unknown(args):
    assert check(*args) == UNKNOWN


def test_parse_vantage():
    assert parse_vantage("45.46,9.19") == (45.46, 9.19)
    assert parse_vantage(" -33.9 , 151.2 ") == (-33.9, 151.2)
    assert parse_vantage("MXP") == MILAN
    assert parse_vantage("mxp") == MILAN
    lat, lon = parse_vantage("Milan")
    assert haversine_km(lat, lon, *MILAN) < 60
    assert parse_vantage("frankfurt") == FRANKFURT


@pytest.mark.parametrize("bad", ["", "Atlantis", "91,0", "45,181", "45;9", None, "x" * 500, "ZZZ"])
def test_parse_vantage_errors(bad):
    with pytest.raises(UsageError) as exc:
        parse_vantage(bad)
    assert "\n" not in str(exc.value)
