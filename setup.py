"""
Install the visual_rl_stack ament_python package.

The repository keeps one top-level folder per capability (``sim/``,
``perception/``, ...). They are installed as sub-packages of
``visual_rl_stack`` so that generic names such as ``sim`` never clash with
other Python packages.
"""

from glob import glob
import os

from setuptools import setup

PACKAGE = 'visual_rl_stack'
SUBPACKAGE_DIRS = ('sim', 'perception', 'residual_policy', 'vlm_affordance', 'world_model')


def _packages_under(folder: str, prefix: str) -> dict:
    """Map every Python package below ``folder`` to its dotted name."""
    found = {}
    for root, _dirs, files in os.walk(folder):
        if '__init__.py' in files and '__pycache__' not in root:
            rel = os.path.relpath(root, folder)
            name = prefix if rel == '.' else prefix + '.' + rel.replace(os.sep, '.')
            found[name] = root
    return found


def _model_files() -> list:
    """Install every shipped model (``models/<name>/...``) under share/, keeping the layout."""
    grouped = {}
    for path in sorted(glob('models/**/*', recursive=True)):
        if os.path.isfile(path):
            grouped.setdefault(os.path.dirname(path), []).append(path)
    return [(f'share/{PACKAGE}/{folder}', files) for folder, files in grouped.items()]


package_dir = _packages_under(PACKAGE, PACKAGE)
for sub in SUBPACKAGE_DIRS:
    package_dir.update(_packages_under(sub, f'{PACKAGE}.{sub}'))

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=sorted(package_dir),
    package_dir=package_dir,
    package_data={f'{PACKAGE}.sim': ['assets/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
    ] + _model_files(),
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='visual_rl_stack maintainers',
    maintainer_email='maintainers@users.noreply.b-seed-55a19e34.example',
    description='Robot-arm manipulation learned from cameras on ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'vrl = visual_rl_stack.cli.main:main',
            'sim_node = visual_rl_stack.sim.sim_node:main',
            'camera_node = visual_rl_stack.perception.camera_node:main',
            'recorder_node = visual_rl_stack.data.recorder_node:main',
            'player_node = visual_rl_stack.data.player_node:main',
            'policy_node = visual_rl_stack.residual_policy.policy_node:main',
            'affordance_node = visual_rl_stack.vlm_affordance.affordance_node:main',
            'world_model_node = visual_rl_stack.world_model.world_model_node:main',
        ],
    },
)
