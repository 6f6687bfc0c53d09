"""Dense reward quality: the measures, KAGI episodes with the shipped model, the staged reward."""

import json

import numpy as np
import pytest
from visual_rl_stack.cli.main import main as vrl
from visual_rl_stack.evaluation.reward_quality import (expert_noise, monotone_fraction, ranks,
                                                       roc_auc, score_source, ScoredEpisode,
                                                       spearman_with_time, summarise)
from visual_rl_stack.vlm_affordance.episode_reward import kagi_reward


def test_ranks_auc_and_rank_correlation():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.5, 0.6], [True, True]) is None
    assert spearman_with_time([0.0, 0.1, 0.2, 0.3]) == pytest.approx(1.0)
    assert spearman_with_time([0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert spearman_with_time([0.2, 0.2]) is None
    assert monotone_fraction([0.1, 0.2, 0.15, 0.3], 0.0, 1e-3) == 0.75
    assert monotone_fraction([0.1, 0.0995], 0.0, 1e-3) == 1.0


def test_sources_and_summary():
    assert expert_noise('expert') == 0.0 and expert_noise('expert:0.4') == 0.4
    assert expert_noise('bc_state_lift') is None
    for bad in ('expert:lots', 'expert:2'):
        with pytest.raises(ValueError, match='expert noise'):
            expert_noise(bad)
    episodes = [ScoredEpisode('a', 0, True, 3, True, 'dense', [0.1, 0.3, 0.5]),
                ScoredEpisode('a', 1, False, 3, True, 'dense', [0.1, 0.2, 0.1]),
                ScoredEpisode('b', 2, False, 0, False, 'sparse only: no frames', [])]
    summary = summarise(episodes)
    assert (summary['planned'], summary['successes'], summary['failures']) == (2, 1, 1)
    assert summary['auc_final_phi'] == 1.0
    assert summary['monotone_step_fraction_median'] == 1.0
    assert summary['not_planned'] == [{'source': 'b', 'seed': 2,
                                       'diagnostic': 'sparse only: no frames'}]
    assert summary['per_source']['b'] == {'episodes': 1, 'planned': 0, 'successes': 0,
                                          'median_final_phi_success': None,
                                          'median_final_phi_failure': None}


def test_expert_progress_rises_to_the_end_with_the_shipped_keypoint_model():
    """The scripted expert's episodes are planned by the shipped model and phi rises with time."""
    reward = kagi_reward('lift')
    episodes = score_source('lift', 'expert', [1000, 1001], reward)
    assert all(e.planned and e.success for e in episodes), [e.diagnostic for e in episodes]
    for episode in episodes:
        assert len(episode.phi) == episode.steps
        assert spearman_with_time(episode.phi) > 0.8
        assert episode.final >= 0.2 - 1e-9         # past pre-grasp and grasp: 2 of 4 reached


def test_vrl_reward_quality_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / 'rq.json'
    assert vrl(['reward-quality', '--task', 'lift', '--sources', 'expert', 'expert:1.0',
                '--episodes', '2', '--json', str(out), '--no-progress']) == 0
    report = json.loads(out.read_text())
    assert report['episodes'] == 4 and len(report['per_episode']) == 4
    assert report['per_source']['expert']['successes'] == 2
    assert out.with_suffix('.png').read_bytes()[:4] == b'\x89PNG'
    assert 'AUC of final progress' in capsys.readouterr().out
    assert vrl(['reward-quality', '--task', 'lift', '--sources', 'expert:x', '--json',
                str(out), '--no-progress']) == 2


def test_vrl_reward_quality_judges_the_staged_reward_and_its_stage_count(tmp_path, capsys):
    out = tmp_path / 'staged.json'
    assert vrl(['reward-quality', '--reward', 'planner_stages', '--task', 'stack', '--sources',
                'expert', '--episodes', '2', '--json', str(out), '--no-progress']) == 0
    report = json.loads(out.read_text())
    assert report['reward'] == 'planner_stages' and report['successes'] == 2
    assert report['stage_agreement_min'] == 1.0
    assert report['monotone_step_fraction_min'] >= 0.9
    assert all(e['phi'][-1] > e['start'] for e in report['per_episode'])
    assert 'stage count' in capsys.readouterr().out
