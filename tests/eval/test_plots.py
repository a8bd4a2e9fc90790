"""mmlink.eval.plots: the PNG each chart writes (its size is the drawn figure's), and what is drawn in it — bars,
error bars, labels, heatmap cells and curves, read back from the matplotlib artists — for the data given."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from mmlink.eval import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the charts save, in order (each is still written to its PNG)."""
    figures, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or save(fig, path))
    return figures


def assert_png_of(path, fig):
    """``path`` is a PNG of the figure's tight bounding box (plus savefig's padding) at `plots.DPI`."""
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    pad = matplotlib.rcParams["savefig.pad_inches"]
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGBA"
        w, h = img.size
    assert w == pytest.approx((bbox.width + 2 * pad) * plots.DPI, abs=2)
    assert h == pytest.approx((bbox.height + 2 * pad) * plots.DPI, abs=2)


def _bars(ax):
    """Per bar container (one per run): [(x centre, height)]."""
    return [[(round(float(p.get_x() + p.get_width() / 2), 6), float(p.get_height())) for p in c.patches]
            for c in ax.containers if hasattr(c, "patches")]


def test_bar_chart_draws_error_bars_and_negative_differences(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    rows = [{"run": "a", "t/CIDEr": -4.0, "t/BLEU-4": 1.5}, {"run": "b", "t/CIDEr": 2.0, "t/BLEU-4": None}]
    errors = {"a": {"t/CIDEr": [-9.0, 1.0], "t/BLEU-4": [0.5, 2.5]}, "b": {"t/CIDEr": None}}
    captured = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: captured.append(fig) or original(fig, *a, **k))
    png = plots.bar_chart(rows, ["t/CIDEr", "t/BLEU-4"], tmp_path / "d.png", errors=errors)
    assert png.stat().st_size > 0
    # the axes as drawn: the interval's lower bound, below 0, is inside the CIDEr panel
    cider = next(ax for ax in captured[0].axes if ax.get_ylabel() == "CIDEr")
    lo, hi = cider.get_ylim()
    assert lo < -9.0 and hi > 2.0
    assert len(cider.containers) >= 3  # two runs' bars and one run's error bars


def test_layer_grid_masks_k_below_l(tmp_path):
    layers = (3, 6, 9, 12)
    scores = {(l, k): l * 10 + k for l in layers for k in layers if k >= l}
    del scores[(3, 9)]  # a valid configuration that was not run
    ls, ks, grid = plots.layer_grid(scores)
    assert ls == list(layers) and ks == list(layers)
    assert grid.shape == (4, 4)
    for i, k in enumerate(ks):
        for j, l in enumerate(ls):
            if k < l or (l, k) == (3, 9):
                assert grid.mask[i, j], (l, k)
            else:
                assert not grid.mask[i, j] and grid[i, j] == l * 10 + k
    assert int(grid.mask.sum()) == 6 + 1

    out = plots.layer_heatmap(scores, tmp_path / "deep" / "heat.png")
    from PIL import Image

    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 0

    with pytest.raises(ValueError, match="k < l"):
        plots.layer_grid({(6, 3): 1.0})


def test_volume_curve_and_scale(tmp_path):
    assert plots.choose_x_scale([1000, 100000]) == "log"
    assert plots.choose_x_scale([0, 1000, 100000]) == "symlog"
    assert plots.choose_x_scale([0, 23000, 46000, 69000]) == "linear"
    assert plots.choose_x_scale([5]) == "linear"
    out = plots.volume_curve(
        {"group captioning": [(69000, 20.2), (0, 14.2), (23000, 18.0)], "storytelling": [(0, 14.7), (69000, 19.5)]},
        tmp_path / "a" / "b" / "volume.png",
    )
    assert out == tmp_path / "a" / "b" / "volume.png"
    from PIL import Image

    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] > 0


def test_plots_reject_empty_input(tmp_path):
    png = tmp_path / "x.png"
    with pytest.raises(ValueError, match="no rows"):
        plots.bar_chart([], ["t/accuracy"], png)
    with pytest.raises(ValueError, match="no columns"):
        plots.bar_chart([{"run": "a"}], [], png)
    with pytest.raises(ValueError, match="every value is missing"):
        plots.bar_chart([{"run": "a", "t/accuracy": None}], ["t/accuracy"], png)
    with pytest.raises(ValueError, match="no scores"):
        plots.layer_heatmap({}, png)
    with pytest.raises(ValueError, match="no series"):
        plots.volume_curve({}, png)
    with pytest.raises(ValueError, match="has no points"):
        plots.volume_curve({"a": []}, png)
    assert not png.exists()


def test_bar_chart_draws_the_values_given(tmp_path, drawn):
    rows = [{"run": "base", "t1/CIDEr": 12.5, "t2/CIDEr": 3.25, "t1/accuracy": 60.0, "t1/rating": 4.5},
            {"run": "sam", "t1/CIDEr": 14.0, "t2/CIDEr": None, "t1/accuracy": 70.0, "t1/rating": float("nan")}]
    columns = ["t1/accuracy", ("t1", "CIDEr"), "t2/CIDEr", "t1/rating"]
    out = plots.bar_chart(rows, columns, tmp_path / "c" / "bars.png", title="Comparison")
    assert out == tmp_path / "c" / "bars.png"
    (fig,) = drawn
    assert_png_of(out, fig)
    assert fig._suptitle.get_text() == "Comparison"
    cider, accuracy, rating = fig.axes  # one panel per metric, in METRIC_ORDER
    assert [ax.get_ylabel() for ax in fig.axes] == ["CIDEr", "accuracy", "rating"]
    assert [t.get_text() for t in cider.get_xticklabels()] == ["t1", "t2"]
    # two runs: bars 0.4 wide, run r's centred at x - 0.4 + 0.4 * (r + 0.5)
    assert _bars(cider) == [[(-0.2, 12.5), (0.8, 3.25)], [(0.2, 14.0)]]  # None: no bar
    assert _bars(accuracy) == [[(-0.2, 60.0)], [(0.2, 70.0)]]
    assert _bars(rating) == [[(-0.2, 4.5)], []]  # NaN is no score
    assert [t.get_text() for t in cider.get_legend().get_texts()] == ["base", "sam"]
    assert [t.get_text() for t in cider.texts] == ["12.5", "3.25", "14.0"]  # 2 decimals below 10
    assert cider.get_ylim() == pytest.approx((0, 14.0 * 1.15)) and rating.get_ylim() == (0, 5.4)


def test_bar_chart_error_bars_span_the_interval(tmp_path, drawn):
    rows = [{"run": "a", "t/accuracy": 50.0}, {"run": "b", "t/accuracy": 80.0}]
    plots.bar_chart(rows, ["t/accuracy"], tmp_path / "e.png", errors={"a": {"t/accuracy": (40.0, 65.0)}})
    (ax,) = drawn[0].axes
    (err,) = [c for c in ax.containers if not hasattr(c, "patches")]
    (segment,) = err.lines[2][0].get_segments()
    assert segment.tolist() == [[-0.2, 40.0], [-0.2, 65.0]]  # run a's bar: from lo to hi, none on run b's


def test_an_all_zero_panel_says_so_and_many_runs_are_not_annotated(tmp_path, drawn):
    rows = [{"run": f"r{i}", "t/accuracy": 0.0, "t/CIDEr": float(i)} for i in range(plots.MAX_ANNOTATED_RUNS + 1)]
    plots.bar_chart(rows, ["t/accuracy", "t/CIDEr"], tmp_path / "z.png")
    cider, accuracy = drawn[0].axes
    assert [t.get_text() for t in accuracy.texts] == ["every accuracy is 0.00"]
    assert list(cider.texts) == []  # 7 runs: no values written on the bars
    with pytest.raises(ValueError, match="column 'accuracy' is not 'task/metric'"):
        plots.bar_chart(rows, ["accuracy"], tmp_path / "bad.png")


def test_layer_heatmap_cells_and_labels(tmp_path, drawn):
    scores = {(1, 1): 0.5, (1, 3): 0.75, (3, 3): 0.25}  # (l=1, k=2) never measured, (2, *) nor
    out = plots.layer_heatmap(scores, tmp_path / "h.png", title="Fig. 6", metric_name="CIDEr")
    fig = drawn[0]
    assert_png_of(out, fig)
    ax, colorbar = fig.axes
    assert ax.get_title() == "Fig. 6" and colorbar.get_ylabel() == "CIDEr"
    cells = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert cells == {((0, 0), "0.50"), ((0, 1), "0.75"), ((1, 1), "0.25")}  # x: l index, y: k index
    best = next(t for t in ax.texts if t.get_text() == "0.75")
    assert best.get_fontweight() == "bold" and all(t.get_fontweight() == "normal" for t in ax.texts if t is not best)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3"]
    assert ax.images[0].get_array().mask.tolist() == [[False, True], [False, False]]  # k=1 < l=3: blank
    plots.layer_heatmap({(1, 1): 0.5, (1, 2): 0.6, (2, 2): 0.7, (3, 3): 0.1}, tmp_path / "na.png")
    assert "n/a" in [t.get_text() for t in drawn[1].axes[0].texts]  # (l=1, k=3) and (2, 3): valid, not measured


@pytest.mark.parametrize("key, message", [
    ((1,), "is not an"), (("1", 2), "is not an"), ((1, 2.0), "is not an"),
])
def test_layer_grid_keys_must_be_int_pairs(key, message):
    with pytest.raises(ValueError, match=message):
        plots.layer_grid({key: 1.0})


def test_layer_grid_scores_must_be_finite():
    with pytest.raises(ValueError, match=r"score at \(l=1, k=2\) is not a finite number: nan"):
        plots.layer_grid({(1, 2): float("nan")})


def test_volume_curve_draws_sorted_points_on_the_chosen_scale(tmp_path, drawn):
    out = plots.volume_curve({"gc": [(69000, 20.5), (0, 14.0), (23000, 18.0)], "st": [(23000, 1.0), (2300, 0.5)]},
                             tmp_path / "v.png", xlabel="samples", ylabel="CIDEr", title="Fig. 5")
    fig = drawn[0]
    assert_png_of(out, fig)
    (ax,) = fig.axes
    gc, st = ax.get_lines()
    assert gc.get_label() == "gc" and gc.get_xdata().tolist() == [0, 23000, 69000]
    assert gc.get_ydata().tolist() == [14.0, 18.0, 20.5] and st.get_xdata().tolist() == [2300, 23000]
    assert ax.get_xscale() == "symlog" and ax.get_title() == "Fig. 5" and ax.get_xlabel() == "samples"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2.3K", "23K", "69K"]
    plots.volume_curve({"a": [(1, 1.0), (2, 2.0)]}, tmp_path / "lin.png")
    assert drawn[1].axes[0].get_xscale() == "linear"
    many = {"a": [(float(10 ** (k / 4)), float(k)) for k in range(16)]}
    plots.volume_curve(many, tmp_path / "log.png")
    assert drawn[2].axes[0].get_xscale() == "log" and len(drawn[2].axes[0].get_xticklabels()) != 16


@pytest.mark.parametrize("point, message", [((1,), "is not an \\(x, y\\) pair"), ((1, "a"), "pair of finite numbers"),
                                            ((1, float("inf")), "pair of finite numbers")])
def test_volume_curve_points_are_checked(tmp_path, point, message):
    with pytest.raises(ValueError, match=f"series 's': point .* {message}"):
        plots.volume_curve({"s": [point]}, tmp_path / "x.png")


def test_human_tick_labels():
    assert [plots._human(x) for x in (0, 999, 1000, 23000, 1_500_000, 2e9)] == ["0", "999", "1K", "23K", "1.5M", "2B"]
    assert plots.choose_x_scale([-1, 10, 1000]) == "linear"
    assert plots.choose_x_scale([1, 9.99]) == "linear" and plots.choose_x_scale([1, 10]) == "log"


def test_charts_leave_pyplot_alone(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.volume_curve({"a": [(1, 1.0)]}, tmp_path / "p.png")
    assert plt.get_fignums() == before


def test_difference_chart_draws_each_runs_differences_with_their_intervals(tmp_path, monkeypatch):
    from mmlink.eval import plots

    seen = {}
    monkeypatch.setattr(plots, "bar_chart", lambda rows, columns, path, title, errors: seen.update(
        rows=rows, columns=columns, errors=errors) or Path(path))
    diffs = {"a": {"t/CIDEr": {"difference": 1.5, "ci": [0.5, 2.5]}},
             "b": {"u/CIDEr": {"difference": -1.0, "ci": None}, "t/CIDEr": {"difference": 0.0, "ci": [-1, 1]}}}
    plots.difference_chart(diffs, tmp_path / "d.png", title="x")
    assert seen["columns"] == ["t/CIDEr", "u/CIDEr"]  # first appearance
    assert seen["rows"] == [{"run": "a", "t/CIDEr": 1.5}, {"run": "b", "u/CIDEr": -1.0, "t/CIDEr": 0.0}]
    assert seen["errors"] == {"a": {"t/CIDEr": [0.5, 2.5]}, "b": {"u/CIDEr": None, "t/CIDEr": [-1, 1]}}
    monkeypatch.undo()
    png = plots.difference_chart(diffs, tmp_path / "d.png", title="x", columns=["u/CIDEr", "t/CIDEr"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
