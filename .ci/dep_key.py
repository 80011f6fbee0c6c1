"""Print a short key for the dependency spec in setup.cfg: install_requires plus every extra that
.ci/run installs (test, upstream)."""
import configparser
import hashlib
import sys

EXTRAS = ("test", "upstream")

cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
spec = "\n".join([
    sys.version.split()[0],
    cfg["options"]["install_requires"],
    *(cfg["options.extras_require"][extra] for extra in EXTRAS),
])
print("py" + sys.version.split()[0] + "-" + hashlib.sha256(spec.encode()).hexdigest()[:12])
