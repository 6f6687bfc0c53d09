"""
A transformers causal language model as stage planner (weights from a local folder).

The prompt lists the scene's object names, the stage kinds and how each kind
of goal expands into stages, and asks for JSON: ``{"stages": [{"kind": ...,
"object": ..., "destination": ...}, ...]}`` (a ``"goals"`` list is accepted
too). Replies are parsed leniently (code fences, text around the JSON, a
bare list), then checked: the stages must be whole goals in order
(:func:`.plan.goals_from_stages`) over objects the scene has
(:func:`.plan.validate`). A reply that fails is asked again, sampled, within
the retry budget; every raw reply is logged, and plans are cached per
(instruction, object names). When no attempt gives a plan the error says why
each failed: a wrong plan is never returned.
"""

import json
from pathlib import Path
import re
from typing import Any, Optional, Sequence

from visual_rl_stack.core.devices import resolve_device
from visual_rl_stack.core.local_models import PathLike, require_model_dir, seeded_generate
from visual_rl_stack.sim.scene_objects import SceneObject

from .plan import Goal, GOAL_STAGES, goals_from_stages, Plan, PlanError, validate

NAME = 'causal-lm'
CONTENTS = 'a transformers causal language model (config.json, weights, tokenizer files)'
_FENCE = re.compile(r'```(?:json)?')


def planner_prompt(instruction: str, scene: Optional[Sequence[SceneObject]]) -> str:
    """Return the request for stages of ``instruction`` over the scene's object names."""
    names = ', '.join(o.name for o in scene) if scene else 'any "<colour> <kind>" name'
    expansions = '; '.join(f'{goal}: {" -> ".join(kinds)}' for goal, kinds in GOAL_STAGES.items())
    return (f'You plan tabletop robot tasks. Objects in the scene: {names}. '
            f'Split the instruction into goals and write each goal as its stages ({expansions}). '
            'Reply with JSON only: {"stages": [{"kind": "reach", "object": "green cube", '
            '"destination": "blue target"}, ...]}. '
            f'Instruction: {instruction}')


def extract_json(reply: str) -> Any:
    """Return the first JSON object or list in ``reply`` (fences and other text ignored)."""
    text = _FENCE.sub(' ', reply)
    decoder = json.JSONDecoder()
    for match in re.finditer(r'[\[{]', text):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except json.JSONDecodeError:
            continue
    raise PlanError(f'no JSON in the reply {reply[:200]!r}')


def parse_plan_reply(reply: str, instruction: str,
                     scene: Optional[Sequence[SceneObject]]) -> Plan:
    """Return the checked plan in a model's ``reply``, or raise :class:`PlanError` saying why."""
    data = extract_json(reply)
    if isinstance(data, list):
        data = {'stages': data}
    if isinstance(data, dict):
        data = {str(k).strip().lower(): v for k, v in data.items()}
    if not isinstance(data, dict) or not isinstance(data.get('stages', data.get('goals')), list):
        raise PlanError('the reply JSON has no "stages" (or "goals") list')
    items = data.get('stages', data.get('goals'))
    if not all(isinstance(item, dict) for item in items):
        raise PlanError('every stage must be a JSON object with kind, object, destination')
    items = [{str(k).strip().lower(): (' '.join(v.lower().split()) if isinstance(v, str) else v)
              for k, v in item.items()} for item in items]
    if 'stages' in data:
        goals = goals_from_stages(items)
    else:
        goals = tuple(Goal(str(i.get('kind')), str(i.get('object') or ''),
                           i.get('destination') or None) for i in items)
    plan = Plan(instruction, goals, NAME)
    if scene is not None:
        validate(plan, scene)
    elif not goals:
        raise PlanError('the reply has no stages')
    return plan


class CausalLMPlanner:
    """``planner(instruction, scene) -> Plan`` through a local causal LM (retries, cache)."""

    def __init__(self, path: PathLike, device: str = 'cpu', retries: int = 2,
                 max_new_tokens: int = 256, retry_temperature: float = 0.7, seed: int = 0,
                 log_path: Optional[PathLike] = None):
        """Load the tokenizer and model in ``path`` (nothing is downloaded)."""
        folder = require_model_dir(path, 'causal-lm planner', CONTENTS)
        if retries < 0 or max_new_tokens < 1:
            raise ValueError('retries must be >= 0 and max_new_tokens >= 1')
        import transformers
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.device = resolve_device(device)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True).to(self.device).eval()
        self.retries, self.max_new_tokens = retries, max_new_tokens
        self.retry_temperature, self.seed = retry_temperature, seed
        self.log_path = None if log_path is None else Path(log_path)
        #: Every raw reply: instruction, attempt, reply text and what was wrong with it.
        self.replies: list[dict] = []
        self.cache: dict[tuple[str, tuple[str, ...]], Plan] = {}

    def encode(self, text: str) -> dict:
        """Return model inputs for the request ``text`` (the chat template when there is one)."""
        if getattr(self.tokenizer, 'chat_template', None):
            text = self.tokenizer.apply_chat_template([{'role': 'user', 'content': text}],
                                                      tokenize=False, add_generation_prompt=True)
        encoded = self.tokenizer(text, return_tensors='pt')
        return {key: value.to(self.device) for key, value in encoded.items()}

    def ask(self, instruction: str, scene: Optional[Sequence[SceneObject]], attempt: int) -> str:
        """Return the model's reply text to the planning request."""
        inputs = self.encode(planner_prompt(instruction, scene))
        tokens = seeded_generate(self.model, inputs, attempt, self.seed, self.max_new_tokens,
                                 self.retry_temperature)
        new = tokens[0, inputs['input_ids'].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def __call__(self, instruction: str, scene: Optional[Sequence[SceneObject]] = None) -> Plan:
        """Return the plan of ``instruction`` (cached), or raise after the retry budget."""
        key = (instruction, tuple(o.name for o in scene or ()))
        if key in self.cache:
            return self.cache[key]
        errors = []
        for attempt in range(self.retries + 1):
            reply = self.ask(instruction, scene, attempt)
            entry = {'instruction': instruction, 'attempt': attempt, 'reply': reply}
            try:
                plan = parse_plan_reply(reply, instruction, scene)
            except PlanError as error:
                errors.append(f'attempt {attempt}: {error}')
                self._log({**entry, 'error': str(error)})
                continue
            self._log({**entry, 'error': None})
            self.cache[key] = plan
            return plan
        raise PlanError(f'the causal-lm planner gave no usable plan for {instruction!r} in '
                        f'{self.retries + 1} attempts: ' + ' | '.join(errors))

    def _log(self, entry: dict) -> None:
        """Keep a raw reply (and append it to the log file, when there is one)."""
        self.replies.append(entry)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open('a') as log:
                log.write(json.dumps(entry) + '\n')
