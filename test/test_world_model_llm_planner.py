"""
The causal-LM planner on tiny models built in the test: real tokenizer, ``generate`` and parser.

A random-weight GPT-2 replies garbage, which must end in a clear refusal
after the retry budget with every raw reply logged; the same tiny model,
first taught one reply, must give that plan through the same path.
"""

import json

import pytest
from visual_rl_stack.sim.scene_objects import SceneObject
from visual_rl_stack.world_model.planning.llm_planner import (CausalLMPlanner, parse_plan_reply,
                                                              planner_prompt)
from visual_rl_stack.world_model.planning.plan import Goal, PlanError
from visual_rl_stack.world_model.planning.planners import open_planner

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
tokenizers = pytest.importorskip('tokenizers')
torch.set_num_threads(1)

SCENE = [SceneObject('red cube', [0.5, 0.0, 0.02], 0.02, 0.02, 0.02, True),
         SceneObject('blue target', [0.6, 0.1, 0.0], 0.0, 0.0, 0.03, False)]
INSTRUCTION = 'put the red cube on the blue target'
REPLY = json.dumps({'stages': [
    {'kind': kind, 'object': 'red cube', 'destination': 'blue target'}
    for kind in ('reach', 'grasp', 'lift', 'move_above', 'place', 'release')]})
MOVE = (Goal('move', 'red cube', 'blue target'),)


def test_replies_are_parsed_leniently_and_checked_against_the_scene():
    fenced = f'Sure! Here is the plan:\n```json\n{REPLY}\n```\nGood luck.'
    assert parse_plan_reply(fenced, INSTRUCTION, SCENE).goals == MOVE
    bare = json.dumps(json.loads(REPLY)['stages'])
    assert parse_plan_reply(bare, INSTRUCTION, SCENE).goals == MOVE
    goals = '{"goals": [{"kind": "move", "object": "Red  Cube", "destination": "blue target"}]}'
    assert parse_plan_reply(goals, INSTRUCTION, SCENE).goals == MOVE
    for reply, says in [('no json here', 'no JSON'),
                        ('{"plan": []}', 'no "stages"'),
                        (REPLY.replace('blue target', 'green target'), 'not in the scene'),
                        (REPLY.replace('"grasp"', '"wave"'), 'no goal'),
                        ('{"stages": ["reach"]}', 'JSON object')]:
        with pytest.raises(PlanError, match=says):
            parse_plan_reply(reply, INSTRUCTION, SCENE)


#: Words, single punctuation marks and single spaces: the fused text decodes exactly.
PIECES = r'\w+|[^\w]'


def tiny_gpt2(folder):
    """Save a one-layer random GPT-2 and a word-level tokenizer; return (model, tokenizer)."""
    import re
    text = planner_prompt(INSTRUCTION, SCENE) + REPLY
    words = ['<unk>', '<eos>'] + sorted(set(re.findall(PIECES, text)))
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(
        {word: i for i, word in enumerate(words)}, unk_token='<unk>'))
    model.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(PIECES), 'isolated')
    model.decoder = tokenizers.decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=model, unk_token='<unk>',
                                                     eos_token='<eos>', pad_token='<eos>')
    config = transformers.GPT2Config(vocab_size=len(words), n_positions=512, n_embd=32,
                                     n_layer=1, n_head=2, eos_token_id=1, bos_token_id=1,
                                     pad_token_id=1)
    torch.manual_seed(0)
    gpt = transformers.GPT2LMHeadModel(config)
    gpt.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return gpt, tokenizer


def test_random_weights_end_in_a_refusal_with_every_reply_logged(tmp_path):
    tiny_gpt2(tmp_path / 'model')
    log = tmp_path / 'replies.jsonl'
    planner = open_planner('causal-lm', str(tmp_path / 'model'), retries=2, max_new_tokens=24,
                           log_path=log)
    with pytest.raises(PlanError, match='no usable plan .* in 3 attempts'):
        planner(INSTRUCTION, SCENE)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line['attempt'] for line in lines] == [0, 1, 2]
    assert all(line['error'] for line in lines) and len(planner.replies) == 3


def test_a_model_that_learnt_the_reply_plans_through_generate_and_is_cached(tmp_path):
    gpt, tokenizer = tiny_gpt2(tmp_path / 'model')
    prompt = tokenizer(planner_prompt(INSTRUCTION, SCENE))['input_ids']
    reply = tokenizer(REPLY)['input_ids'] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt + reply])
    labels = ids.clone()
    labels[0, :len(prompt)] = -100
    optimiser = torch.optim.Adam(gpt.parameters(), lr=1e-2)
    for _ in range(150):
        loss = gpt(input_ids=ids, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    gpt.save_pretrained(tmp_path / 'model')
    planner = CausalLMPlanner(tmp_path / 'model', retries=0, max_new_tokens=len(reply) + 2)
    plan = planner(INSTRUCTION, SCENE)
    assert plan.goals == MOVE and plan.planner == 'causal-lm'
    assert planner(INSTRUCTION, SCENE) is plan and len(planner.replies) == 1


def test_a_missing_model_folder_is_named_before_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        open_planner('causal-lm', str(tmp_path / 'nothing'))
    with pytest.raises(ValueError, match='needs a local model folder'):
        open_planner('causal-lm')
    with pytest.raises(ValueError, match='unknown planner'):
        open_planner('oracle')
