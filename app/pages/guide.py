"""Guide page: what pruning, DRoP and each scorer do; how to reproduce the paper; how to use your own images.

The scorer, quota-rule and preset tables are read from their registries, so they never drift from the code.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.errors import guard
from drop_core.presets import PRESETS
from drop_core.quotas import QUOTERS
from drop_core.scoring import SCORERS

QUERY_MODEL = {
    "none": "no query model",
    "early": "short query runs (10% of the epochs) over several inits, averaged",
    "full": "one full query run",
}


def pruning_ui() -> None:
    st.header("Data pruning, and why it is unfair to some classes")
    st.markdown(
        """
**Data pruning** trains on a fraction *d* (the **density**) of the training set, chosen so that the
model loses as little accuracy as possible. A **scorer** gives each training sample a number from a
*query model* trained first; everywhere in this app the orientation is

> **higher score = harder = kept first.**

Pruning by score keeps the hardest samples of the whole dataset (quota rule `none`). The catch, shown by
Vysogorets, Ahuja & Kempe (ICLR 2025): the average accuracy barely moves, but the classes that were
already hard lose most — **worst-class accuracy drops**, because the kept density of each class follows
the score distribution, not what the class needs.

**DRoP** (Distributionally Robust Pruning, Algorithm 1) fixes the **quota per class** first: it trains the
query model, reads each class's **validation recall** *r_k*, and gives class *k* a density proportional to its
error *1 − r_k* (capped at 1; the budget of capped classes is spread over the rest). Within a class it then
keeps random samples (`random` + `drop`, the paper's DRoP) or the top-scored ones (*strategy*+DRoP).

Beware: a class with validation recall 1 gets quota 0 — the final model never sees it. The Experiment page
warns about this; *Minimum samples kept per class* sets a floor.
"""
    )


def scorers_ui() -> None:
    st.header("Scorers")
    st.caption("Higher score = harder = kept first, for every scorer.")
    table = pd.DataFrame(
        [{"scorer": e.name, "what it measures": e.description, "query model": QUERY_MODEL.get(e.obj.query, e.obj.query)}
         for e in SCORERS]
    )
    st.table(table.set_index("scorer"))
    st.header("Quota rules")
    st.table(pd.DataFrame([{"quota rule": e.name, "how many samples each class keeps": e.description}
                           for e in QUOTERS]).set_index("quota rule"))
    st.header("Presets")
    st.table(pd.DataFrame([{"preset": e.name, "what it is for": e.description} for e in PRESETS]).set_index("preset"))


def reading_ui() -> None:
    st.header("Reading the results")
    st.markdown(
        """
1. **Per class**: the test accuracy of every class, full data next to each pruned method. The worst
   class of each method is outlined.
2. **Across densities**: average and worst-class accuracy against the density, one line per method,
   bands from the min to the max over seeds — the paper's main figure.
3. **Bias**: each class's kept density against the full-data model's error on it, with Pearson's *r*.
   DRoP gives a positive *r* by design; score-based pruning often does not.
4. **Quotas**: class size, validation recall of the query model and the quota it led to.
5. **Examples**: kept and pruned training images of one class (image datasets).

Changing only the density or the quota rule reuses the query model's cached scores: such runs only train
the final model, and the page says so.
"""
    )


def reproduce_ui() -> None:
    st.header("Reproduce the paper on a GPU")
    st.markdown(
        "The browser is for small runs; the paper's grid belongs to the command line. One run of Random+DRoP "
        "on CIFAR-10 with VGG-16 at density 0.5, over the paper's three seeds (`--download` fetches CIFAR-10 "
        "into `DATA` once):"
    )
    st.code(
        "python -m drop_core run --dataset cifar10 --data-root DATA --download --preset paper --device cuda \\\n"
        "    --scorer random --quoter drop --density 0.5 --seeds 0 1 2",
        language="bash",
    )
    st.markdown("The paper's grid of scorers, quota rules, densities and seeds as one sweep (on Ray):")
    st.code(
        "python -m drop_core sweep --dataset cifar10 --data-root DATA --preset paper --device cuda \\\n"
        "    --scorers random el2n grand forgetting dynamic_uncertainty --quoters none drop \\\n"
        "    --densities 0.3 0.5 0.8 --seeds 0 1 2 --gpus-per-run 0.5",
        language="bash",
    )
    st.markdown(
        "The `paper` preset is the authors' recipe (VGG-16, SGD, learning-rate drops, epoch scaling); `fast` is a "
        "much shorter GPU recipe that is not the paper's. Results land in the same store this app reads: open "
        "the **Results** page to compare them. Every option: `python -m drop_core run --help`."
    )


def own_data_ui() -> None:
    st.header("Your own image folder")
    st.markdown(
        """
Put the training images in one sub-folder per class under `train/`, and the test images the same way
under `test/` (or `val/`). All images must have the same size; PNG, JPEG and the other common formats work.

```
my_data/
  train/  cats/ 001.png 002.png ...   dogs/ 001.png ...
  test/   cats/ 501.png ...           dogs/ 501.png ...
```

The test folder is split per class: its first half validates the query model (the recall DRoP reads), the
second half gives the reported test accuracy. On the Experiment page choose **your image folder** and type
the path (`my_data`); from the command line the dataset is `imagefolder:my_data`. Classes are named after
the sub-folders of `train/`. Images are decoded once and cached, so later runs start fast. Training
augments with random left-right flips and shifts of up to 1/8 of the image size. If a mirror image would
belong to another class (letters, digits, road signs with arrows), set **Mirror flips when augmenting** to
*off* under the Experiment page's **Advanced** (`--no-flip` on the command line; `--no-augment` turns
augmentation off altogether).
"""
    )


def files_ui() -> None:
    st.header("Where the app writes")
    st.markdown(
        """
- **Results store**: `runs/drop.sqlite` (the `DROP_STORE` environment variable picks another file); the
  background workers' logs are in `runs/logs/` next to it, with `app.log`: when the app reports an
  "internal error", the traceback is there (please attach it to a bug report).
- **Query-model and score cache**: `runs/cache/` (`DROP_CACHE` picks another folder). A damaged entry is
  reported and recomputed; deleting the folder only costs the time to train the query models again.
- **Your image folder**: its decoded images go to a hidden `.drop_cache/` folder inside it (or
  `~/.cache/drop_core` when the folder is read-only). They are reused while the images are unchanged and
  recomputed when any file changes; you can delete the folder at any time.

Results are tied to what the data *is*: the folder's absolute path and a fingerprint of its files. Changing,
adding or removing an image gives new query models and new runs, never an old result.
"""
    )


def main() -> None:
    st.title("Guide")
    pruning_ui()
    scorers_ui()
    reading_ui()
    reproduce_ui()
    own_data_ui()
    files_ui()


# Every page: Streamlit runs the file as "__main__" (importing it, as tests do, draws nothing), and
# ``guard`` turns any fault into one st.error (see app/errors.py).
if __name__ == "__main__":
    with guard():
        main()
