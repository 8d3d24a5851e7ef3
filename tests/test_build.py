import re

import tfllmer_fast


def test_build_info_reports_versions():
    info = tfllmer_fast.build_info()
    assert re.fullmatch(r"3\.4\.\d+", info["eigen"]), info
    assert re.fullmatch(r"1\.\d+\.\d+", info["spectra"]), info
    assert int(info["openmp"]) >= 201511  # OpenMP 4.5 or newer
    assert info["openmp_max_threads"] >= 1
    assert info["version"] == tfllmer_fast.__version__
