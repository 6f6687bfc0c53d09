"""
Transformers backends end to end on tiny random-weight models built in the test.

Each family's model, tokenizer (a ``tokenizers`` WordLevel vocabulary) and
image processor are saved to a temporary folder and loaded back through the
backend, which runs real ``generate``: the reply of random weights is garbage
text, so parsing is checked on replies written in the family's own format.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from visual_rl_stack.vlm_affordance.affordance import Prompt, ReplyError
from visual_rl_stack.vlm_affordance.backends import BACKENDS, open_backend
from visual_rl_stack.vlm_affordance.backends.phrases import detector_aliases, object_phrases
from visual_rl_stack.vlm_affordance.replies import to_model_pixels

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
tokenizers = pytest.importorskip('tokenizers')
torch.set_num_threads(1)

#: The view a model sees (120x80, overlays drawn) shows an original 60x40 camera image.
SHOWN, ORIGINAL = (120, 80), (60, 40)
INSTRUCTION = 'put the red cube on the blue target'


def _prompt() -> Prompt:
    """Return a one-view prompt of random pixels."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(SHOWN[1], SHOWN[0], 3), dtype=np.uint8)
    return Prompt(INSTRUCTION, {'front': image}, original_sizes={'front': ORIGINAL})


def _tokenizer(words, **special):
    """Return a fast tokenizer over ``words`` (whitespace-split, unknown words to the first)."""
    vocab = {word: i for i, word in enumerate(words)}
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token=words[0]))
    model.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=model, unk_token=words[0],
                                                **special)


WORDS = ['<unk>', 'the', 'red', 'cube', 'blue', 'target', 'grasp', 'point', 'json', '[', ']',
         '{', '}', ':', ',', '"', '.', ';'] + [str(i) for i in range(50)]


def _qwen(folder):
    """Save a tiny Qwen2.5-VL: tokenizer, image processor (no processor: see the backend)."""
    special = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>',
               '<|vision_end|>', '<|image_pad|>', '<|video_pad|>']
    tokenizer = _tokenizer(WORDS + special, eos_token='<|im_end|>', pad_token='<|endoftext|>',
                           additional_special_tokens=special)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in special}
    image_processor = transformers.Qwen2VLImageProcessorPil(min_pixels=28 * 28,
                                                            max_pixels=28 * 28 * 16)
    text = transformers.Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        bos_token_id=ids['<|im_start|>'], eos_token_id=ids['<|im_end|>'],
        pad_token_id=ids['<|endoftext|>'],
        rope_parameters={'rope_type': 'default', 'rope_theta': 10000.0,
                         'mrope_section': [2, 3, 3]})
    vision = transformers.Qwen2_5_VLVisionConfig(
        depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
        fullatt_block_indexes=[0], window_size=56)
    config = transformers.Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids['<|image_pad|>'],
        video_token_id=ids['<|video_pad|>'], vision_start_token_id=ids['<|vision_start|>'],
        vision_end_token_id=ids['<|vision_end|>'])
    transformers.Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)


def _paligemma(folder):
    """Save a tiny PaliGemma and its processor (28x28 images, 4 image tokens)."""
    tokenizer = _tokenizer(WORDS + ['<pad>', '<eos>', '<bos>', 'detect'], pad_token='<pad>',
                           eos_token='<eos>', bos_token='<bos>')
    image_processor = transformers.SiglipImageProcessorPil(size={'height': 28, 'width': 28},
                                                           image_seq_length=4)
    processor = transformers.PaliGemmaProcessor(image_processor=image_processor,
                                                tokenizer=tokenizer)
    text = transformers.GemmaConfig(
        vocab_size=len(processor.tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    vision = transformers.SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=28, patch_size=14, projection_dim=32)
    config = transformers.PaliGemmaConfig(text_config=text, vision_config=vision,
                                          image_token_id=processor.image_token_id,
                                          projection_dim=32)
    transformers.PaliGemmaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


def _florence(folder):
    """Save a tiny Florence-2 and its processor (32x32 images, 17 image tokens)."""
    locations = [f'<loc_{i}>' for i in range(1000)]
    words = ['<unk>', '<s>', '<pad>', '</s>', '<image>'] + WORDS[1:] + locations
    tokenizer = _tokenizer(words, bos_token='<s>', pad_token='<pad>', eos_token='</s>',
                           extra_special_tokens={'image_token': '<image>'})
    # one 8-pixel-stride stage: a 32x32 image gives 4x4 + 1 visual tokens
    image_processor = transformers.CLIPImageProcessorPil(
        size={'height': 32, 'width': 32}, crop_size={'height': 32, 'width': 32},
        do_center_crop=False, image_seq_length=17)
    processor = transformers.Florence2Processor(
        image_processor=image_processor, tokenizer=tokenizer,
        post_processor_config={'phrase_grounding': {'banned_grounding_tokens': []}})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ('<s>', '<pad>', '</s>')}
    text = transformers.BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=128, bos_token_id=ids['<s>'],
        pad_token_id=ids['<pad>'], eos_token_id=ids['</s>'], decoder_start_token_id=ids['</s>'],
        forced_eos_token_id=ids['</s>'])
    vision = transformers.Florence2VisionConfig(
        depths=(1,), embed_dim=(16,), num_heads=(2,), num_groups=(2,), patch_size=(7,),
        patch_stride=(8,), patch_padding=(3,), patch_prenorm=(False,), window_size=2,
        projection_dim=32, max_position_embeddings=8)
    config = transformers.Florence2Config(text_config=text, vision_config=vision,
                                          image_token_id=tokenizer.image_token_id)
    transformers.Florence2ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


BUILDERS = {'qwen2_5_vl': _qwen, 'paligemma': _paligemma, 'florence2': _florence}


@pytest.fixture(scope='module')
def model_dir(request, tmp_path_factory):
    """Return a folder holding a tiny random model of the family named by the parameter."""
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    BUILDERS[request.param](folder)
    return folder


def _point(affordance, name):
    """Return the ``(u, v)`` of keypoint ``name``."""
    keypoint = affordance.keypoints[name]
    return keypoint.u, keypoint.v


@pytest.mark.parametrize('model_dir', ['qwen2_5_vl'], indirect=True)
def test_qwen_asks_with_real_generate_and_rescales_its_points(model_dir):
    backend = open_backend('qwen2_5_vl', str(model_dir), max_new_tokens=6)
    prompt = _prompt()
    reply = backend.ask(prompt, attempt=0)
    assert isinstance(reply, str)
    assert backend.ask(prompt, attempt=0) == reply
    assert backend.ask(prompt, attempt=1) == backend.ask(prompt, attempt=1)
    # smart_resize of 120x80 to multiples of 28: 112x84 (8x6 patches of 14 pixels)
    image = backend.image(prompt)
    assert backend.model_size(image) == (112, 84)
    grasp = to_model_pixels(20.0, 10.0, ORIGINAL, (112, 84))
    target = to_model_pixels(45.0, 30.0, ORIGINAL, (112, 84))
    crafted = json.dumps([{'point_2d': list(grasp), 'label': 'grasp'},
                          {'point_2d': list(target), 'label': 'target'}])
    affordance = backend.parse(f'```json\n{crafted}\n```', prompt)
    assert _point(affordance, 'grasp') == pytest.approx((20.0, 10.0))
    assert _point(affordance, 'target') == pytest.approx((45.0, 30.0))
    assert affordance.backend == 'qwen2_5_vl'
    integer = backend.parse('[{"point_2d": [56, 42], "label": "grasp"}, '
                            '{"point_2d": [0, 83], "label": "target"}]', prompt)
    assert _point(integer, 'grasp') == pytest.approx((56.5 * 60 / 112 - 0.5, 42.5 * 40 / 84 - 0.5))
    with pytest.raises(ReplyError, match='no target'):
        backend.parse('[{"point_2d": [56, 42], "label": "grasp"}]', prompt)


@pytest.mark.parametrize('model_dir', ['paligemma'], indirect=True)
def test_paligemma_detects_the_instruction_phrases_and_maps_box_centres(model_dir):
    backend = open_backend('paligemma', str(model_dir), max_new_tokens=6)
    prompt = _prompt()
    inputs = backend._inputs(prompt, backend.image(prompt))
    text = backend.processor.decode(inputs['input_ids'][0], skip_special_tokens=True)
    assert 'detect red cube ; blue target' in text and 'labels' not in inputs
    reply = backend.ask(prompt, attempt=0)
    assert isinstance(reply, str)
    crafted = ('<loc0256><loc0000><loc0768><loc0512> red cube ; '
               '<loc0000><loc0512><loc0512><loc1023> blue target')
    affordance = backend.parse(crafted, prompt)
    # box centres (x 256, y 512) and (x 767.5, y 256) of 1024 bins on the original 60x40 image
    assert _point(affordance, 'grasp') == (256 / 1024 * 60 - 0.5, 512 / 1024 * 40 - 0.5)
    assert _point(affordance, 'target') == (767.5 / 1024 * 60 - 0.5, 256 / 1024 * 40 - 0.5)


@pytest.mark.parametrize('model_dir', ['florence2'], indirect=True)
def test_florence_grounds_the_instruction_phrases_through_post_processing(model_dir):
    backend = open_backend('florence2', str(model_dir), max_new_tokens=6)
    prompt = _prompt()
    reply = backend.ask(prompt, attempt=0)
    assert isinstance(reply, str)
    crafted = ('</s><s>red cube<loc_0><loc_0><loc_499><loc_499>'
               'blue target<loc_500><loc_250><loc_999><loc_749></s>')
    affordance = backend.parse(crafted, prompt)
    # post_process_generation dequantizes to the ORIGINAL 60x40 image and truncates to pixels
    assert _point(affordance, 'grasp') == (14.5, 9.5)
    assert _point(affordance, 'target') == (44.5, 19.5)
    with pytest.raises(ReplyError, match='no grasp and no target'):
        backend.parse('</s><s>bowl<loc_0><loc_0><loc_9><loc_9></s>', prompt)


@pytest.mark.parametrize('name', sorted(set(BACKENDS) - {'keypoint_net'}))
def test_a_missing_model_folder_is_a_clear_error(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=f'{tmp_path / "nope"}.* does not exist; it '
                                                'should hold config.json'):
        open_backend(name, str(tmp_path / 'nope'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='has no config.json'):
        open_backend(name, str(tmp_path / 'empty'))


def test_a_missing_keypoint_model_names_the_shipped_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match='neither a folder nor a shipped model '
                                                '.*affordance_keypoints'):
        open_backend('keypoint_net', str(tmp_path / 'nope'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
def test_cuda_without_cuda_is_refused_before_loading(tmp_path):
    (tmp_path / 'config.json').write_text('{}')
    with pytest.raises(ValueError, match='CUDA is not available'):
        open_backend('qwen2_5_vl', str(tmp_path), device='cuda')


def test_the_registry_imports_no_model_code_until_a_backend_opens(tmp_path):
    script = (
        'import sys\n'
        'from visual_rl_stack.vlm_affordance.backends import BACKENDS, open_backend\n'
        'assert "torch" not in sys.modules and "transformers" not in sys.modules\n'
        'import visual_rl_stack.vlm_affordance.replies\n'
        'assert "torch" not in sys.modules\n'
        'for name in BACKENDS:\n'
        '    try:\n'
        f'        open_backend(name, {str(tmp_path / "missing")!r})\n'
        '    except FileNotFoundError:\n'
        '        pass\n'
        'assert "transformers" not in sys.modules\n')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_unknown_backends_name_the_known_ones():
    with pytest.raises(ValueError, match='unknown affordance backend .molmo2.*florence2, '
                                         'keypoint_net, paligemma, qwen2_5_vl'):
        open_backend('molmo2', '/models/molmo2')


@pytest.mark.parametrize('instruction, phrases', [
    ('put the green cube on the blue target', ('green cube', 'blue target')),
    ('push the blue block onto the yellow circle', ('blue block', 'yellow circle')),
    ('insert the red peg into the square hole', ('red peg', 'square hole')),
    ('stack the green cube on the red cube, then the blue cube on the green cube',
     ('green cube', 'red cube')),
    ('Pick up the red cube and lift it.', ('red cube', None)),
])
def test_instructions_split_into_object_and_destination(instruction, phrases):
    assert object_phrases(instruction) == phrases


def test_a_lift_has_its_object_as_both_grasp_and_target():
    assert detector_aliases('pick up the red cube and lift it') == (
        ['red cube'], {'red cube': ('grasp', 'target')})
    with pytest.raises(ValueError, match='no object'):
        object_phrases('pick up')
