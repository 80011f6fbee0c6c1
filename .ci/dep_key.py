"""Print a short key for the dependency spec in setup.cfg (install_requires + the test extra)."""
import configparser
import hashlib
import sys

cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
spec = "\n".join([
    sys.version.split()[0],
    cfg["options"]["install_requires"],
    cfg["options.extras_require"]["test"],
])
print("py" + sys.version.split()[0] + "-" + hashlib.sha256(spec.encode()).hexdigest()[:12])
