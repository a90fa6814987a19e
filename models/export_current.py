#!/opt/torchenv/bin/python
"""Current-PyTorch test models: tiny Hugging Face/SDPA models exported in every exporter mode.

Re-run (torch 2.15 / transformers 5 / onnx 1.23 venv; seeded, no downloads; ~2 min):

    /opt/torchenv/bin/python models/export_current.py                # all of models/current/
    /opt/torchenv/bin/python models/export_current.py --only gpt2 --out /tmp/cur

Per model <m> in models/current/<m>/:
    <m>.<mode>.onnx                    one file per exporter mode (MODES below, or the model's own
                                       "modes" option) that succeeded
    data/<input>.npy                   NUM_SAMPLES samples per graph input (dim 0 = sample)
    reference/trajectories/adam.json   PyTorch 30-step trajectory with reference_configs/adam.json,
                                       same format and DeepSpeed semantics as
                                       reference_trajectories.py (no shuffling, drop_last)
    reference/parameters.json          PyTorch's named_parameters(): names, shapes, trainable count
and models/current/manifest.json: per file the exporter call, opset, IR version, op types, and how
its initializers map to PyTorch's parameters (tools/export_for_training.map_parameters); a mode the
exporter cannot produce is listed with its error.

Every mode exports the same module object with the same initial weights (seeded construction), and
the trajectory trains a copy of that module, so the trajectory is the reference for every file.
All dropout probabilities are 0; the graphs are exported in train mode.
"""

import argparse
import collections
import copy
import json
import os
import shutil
import sys
import time
import traceback
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import export_for_training as X  # noqa: E402
import export_models as E  # noqa: E402
import reference_trajectories as R  # noqa: E402

NUM_SAMPLES = 64
SEQ = 16
VOCAB = 64
EXAMPLE_BATCH = 4
STEPS = R.REFERENCE_STEPS
CONFIG = "adam"

# mode -> (exporter, opset, optimize); opset None = the exporter's default.
MODES = collections.OrderedDict([
    ("dynamo_default", ("dynamo", None, True)),
    ("dynamo18", ("dynamo", 18, True)),
    ("dynamo_default_noopt", ("dynamo", None, False)),
    ("dynamo18_noopt", ("dynamo", 18, False)),
    # opset 23 brings the Attention op (SDPA exports to it); torch 2.15 asked for 24..28 writes
    # Attention into an opset-18 model (fails the ONNX checker), so 23 is the newest kept here
    ("dynamo23_noopt", ("dynamo", 23, False)),
    ("legacy17", ("legacy", 17, False)),
    ("legacy18", ("legacy", 18, False)),
    ("helper", None),
])


# --------------------------------------------------------------------------
# Models: forward(inputs..., labels) -> mean cross entropy
# --------------------------------------------------------------------------

class CausalLMLoss(nn.Module):
    """Labels are already shifted (data_gpt), so the loss is a plain token-wise cross entropy."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        logits = self.model(input_ids=input_ids, use_cache=False).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


class SeqClsLoss(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        return F.cross_entropy(self.model(input_ids=input_ids).logits, labels)


class ImageClsLoss(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, labels):
        return F.cross_entropy(self.model(pixel_values=pixel_values).logits, labels)


class SDPABlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.fc_out = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class SDPAModel(nn.Module):
    """A small GPT whose attention is F.scaled_dot_product_attention(is_causal=True)."""

    def __init__(self, vocab=VOCAB, seq=SEQ, n_embd=32, n_head=4, n_layer=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, n_embd)
        self.pos = nn.Embedding(seq, n_embd)
        self.blocks = nn.ModuleList(SDPABlock(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, input_ids, labels):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def build_gpt2():
    cfg = T.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=2, n_head=4,
                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    return CausalLMLoss(T.GPT2LMHeadModel(cfg))


def build_llama():
    cfg = T.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ,
                        attention_dropout=0.0, tie_word_embeddings=False, use_cache=False)
    return CausalLMLoss(T.LlamaForCausalLM(cfg))


def build_bert():
    cfg = T.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=SEQ, num_labels=3,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return SeqClsLoss(T.BertForSequenceClassification(cfg))


def build_vit():
    cfg = T.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=10)
    return ImageClsLoss(T.ViTForImageClassification(cfg))


def build_qwen2():
    cfg = T.Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ,
                        attention_dropout=0.0, tie_word_embeddings=False, use_cache=False)
    return CausalLMLoss(T.Qwen2ForCausalLM(cfg))


def build_olmoe():
    """Mixture of experts: a softmax router keeps the top 2 of 4 experts per token (ONNX TopK), the
    experts run as batched matmuls (experts_implementation="batched_mm") weighted by the kept
    probabilities. Small experts (intermediate 16) keep the files small."""
    cfg = T.OlmoeConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=16, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                        max_position_embeddings=SEQ, experts_implementation="batched_mm", use_cache=False)
    return CausalLMLoss(T.OlmoeForCausalLM(cfg))


def build_gemma2():
    """Soft-capped attention and logits, GELU-tanh MLP, sliding-window layers (window < SEQ), pad row 0."""
    cfg = T.Gemma2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=SEQ,
                         sliding_window=8, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                         attention_dropout=0.0, use_cache=False)
    return CausalLMLoss(T.Gemma2ForCausalLM(cfg))


def build_phi():
    """Partial rotary embedding (half of each head), parallel attention/MLP, biases everywhere."""
    cfg = T.PhiConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, max_position_embeddings=SEQ, partial_rotary_factor=0.5,
                      resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, use_cache=False)
    return CausalLMLoss(T.PhiForCausalLM(cfg))


class MaskedLMLoss(nn.Module):
    """Cross entropy of every position's logits against labels (here: the next token)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        logits = self.model(input_ids=input_ids).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def build_roberta():
    """Position ids from the padding mask (int32 cumsum); word and position embeddings with padding_idx."""
    cfg = T.RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=SEQ + 2, pad_token_id=1,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return MaskedLMLoss(T.RobertaForMaskedLM(cfg))


# ---- vision/audio sweep: BatchNorm in training mode, LayerNorm over channels, 1-D convolutions

def build_hf_resnet():
    """BatchNorm in training mode (the dynamo exporter writes it as inference BatchNormalization)."""
    cfg = T.ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                         layer_type="basic", num_labels=10)
    return ImageClsLoss(T.ResNetForImageClassification(cfg))


def build_hf_convnext():
    """Depthwise 7x7 convolutions, LayerNorm over channels (channels-first), GELU, layer scale."""
    cfg = T.ConvNextConfig(num_channels=3, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1],
                           num_labels=10, image_size=16, drop_path_rate=0.0)
    return ImageClsLoss(T.ConvNextForImageClassification(cfg))


class Seq2SeqAudioLoss(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_features, decoder_input_ids, labels):
        logits = self.model(input_features=input_features, decoder_input_ids=decoder_input_ids,
                            use_cache=False).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


WHISPER_MELS = 8


def build_whisper():
    """Conv1d frontend (GELU, stride 2), sinusoidal encoder positions, encoder-decoder attention."""
    cfg = T.WhisperConfig(vocab_size=VOCAB, num_mel_bins=WHISPER_MELS, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                          decoder_ffn_dim=64, d_model=32, max_source_positions=SEQ, max_target_positions=SEQ,
                          dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, pad_token_id=0,
                          bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, use_cache=False)
    return Seq2SeqAudioLoss(T.WhisperForConditionalGeneration(cfg))


class AudioClsLoss(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_values, labels):
        return F.cross_entropy(self.model(input_values=input_values).logits, labels)


AUDIO_SAMPLES = 400
AUDIO_CLASSES = 4


def build_wav2vec2():
    """Conv1d feature encoder with GroupNorm (exported as InstanceNormalization), weight-normed
    positional conv (ReduceL2), mean pooling, sequence classification head."""
    cfg = T.Wav2Vec2Config(vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
                           num_feat_extract_layers=2, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4,
                           feat_extract_norm="group", do_stable_layer_norm=False, hidden_dropout=0.0,
                           activation_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0,
                           layerdrop=0.0, mask_time_prob=0.0, mask_feature_prob=0.0, num_labels=AUDIO_CLASSES,
                           classifier_proj_size=16)
    return AudioClsLoss(T.Wav2Vec2ForSequenceClassification(cfg))


class ConvAutoencoder(nn.Module):
    """Learned upsampling (ConvTranspose): a strided conv encoder, a decoder of ConvTranspose2d (stride 2;
    stride 2 with output_padding and groups) reconstructing the image, and a ConvTranspose1d branch
    (stride 2, dilation 2, output_padding, no bias) over the bottleneck's flattened positions feeding a
    classifier. Loss: reconstruction MSE + cross entropy."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.dec1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.dec2 = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.out = nn.Conv2d(4, 3, 1)
        self.up1d = nn.ConvTranspose1d(16, 8, 3, stride=2, padding=2, output_padding=1, dilation=2, bias=False)
        self.cls = nn.Linear(8, 10)

    def forward(self, pixel_values, labels):
        h = F.relu(self.enc2(F.relu(self.enc1(pixel_values))))              # (N, 16, 4, 4)
        recon = self.out(F.relu(self.dec2(F.relu(self.dec1(h)))))           # (N, 3, 16, 16)
        seq = F.relu(self.up1d(h.flatten(2)))                               # (N, 8, 32)
        logits = self.cls(seq.mean(dim=2))
        return F.mse_loss(recon, pixel_values) + F.cross_entropy(logits, labels)


# ---- architecture sweep: weights shared between layers or with the embedding, relative position
# buckets, disentangled attention, shifted windows
class CrossEntropyForms(nn.Module):
    """F.cross_entropy in the forms the dynamo exporter's SoftmaxCrossEntropyLoss does not compute:
    label_smoothing (dropped from the ONNX node; dscompile restores it) with class weights and
    ignore_index, over extra dims with reduction sum, with reduction none, with ignore_index alone;
    and probability targets (soft labels, as mixup makes), with and without weights and smoothing."""

    def __init__(self, n_cls=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8 * 4 * 4, 2 * n_cls)
        self.n_cls = n_cls
        self.register_buffer("class_weight", torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0]))

    def forward(self, pixel_values, labels):
        h = torch.relu(self.conv(pixel_values))
        z = self.head(h.flatten(1)).view(-1, self.n_cls, 2)            # (B, C, 2): per-sample pairs
        pair = torch.stack([labels, torch.where(labels == 4, 0, labels + 1)], 1)  # (B, 2)
        dropped = torch.where(labels == 4, torch.full_like(labels, -100), labels)
        soft = F.one_hot(labels, self.n_cls).float() * 0.7 + 0.06                 # mixup-like soft labels
        return (F.cross_entropy(z[:, :, 0], labels, weight=self.class_weight, ignore_index=3, label_smoothing=0.15)
                + F.cross_entropy(z, pair, reduction="sum", label_smoothing=0.3) / labels.shape[0]
                + F.cross_entropy(z[:, :, 1], labels, reduction="none", label_smoothing=0.05).mean()
                + F.cross_entropy(z[:, :, 0] - z[:, :, 1], dropped, label_smoothing=0.1)
                + F.cross_entropy(z[:, :, 1], soft, weight=self.class_weight, label_smoothing=0.2)
                + F.cross_entropy(z, torch.stack([soft, soft.flip(1)], 2), reduction="sum") / labels.shape[0])


class DetachLosses(nn.Module):
    """Tensor.detach() where it changes the gradient: a VQ-VAE-style straight-through estimator
    (z + (q - z).detach()) with its commitment loss against a detached encoding, a stop-gradient
    target (BYOL/SimSiam, distillation) and a value read both ways by one expression. ONNX has no
    detach: dscompile restores it from the dynamo exporter's node metadata."""

    def __init__(self, n_cls=10, codes=16, dim=8):
        super().__init__()
        self.enc = nn.Linear(3 * 8 * 8, dim)
        self.codebook = nn.Parameter(torch.randn(dim, codes) * 0.5)
        self.dec = nn.Linear(codes, dim)
        self.pred = nn.Linear(dim, dim)
        self.head = nn.Linear(2 * dim, n_cls)

    def forward(self, pixel_values, labels):
        z = self.enc(pixel_values.flatten(1))
        q = self.dec(torch.softmax(z @ self.codebook, -1))       # soft quantisation
        st = z + (q - z).detach()                                  # straight-through: the value of q, z's gradient
        commit = ((z.detach() - q) ** 2).mean()                    # trains the codebook only
        target = torch.tanh(st).detach()                           # stop-gradient target
        byol = ((self.pred(z) - target) ** 2).mean()
        return F.cross_entropy(self.head(torch.cat([st, z], 1)), labels) + 0.1 * commit + 0.1 * byol


def data_image5(n, seed):
    d = E.data_cnn(n, seed, chans=3, hw=8, n_cls=5)
    return {"pixel_values": d["x"], "labels": d["y"]}


def build_llama_tied():
    """Input embedding and lm_head are one tensor (tie_word_embeddings)."""
    cfg = T.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=SEQ,
                        tie_word_embeddings=True, use_cache=False)
    return CausalLMLoss(T.LlamaForCausalLM(cfg))


def build_gpt_neox():
    """Pythia's architecture: parallel residual, both block norms reading the block's input (equal
    when fresh, so the default export's optimizer merges them by CSE; dscompile splits them)."""
    cfg = T.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=SEQ, rotary_pct=0.25,
                          use_parallel_residual=True, hidden_dropout=0.0, attention_dropout=0.0, use_cache=False)
    return CausalLMLoss(T.GPTNeoXForCausalLM(cfg))


def build_albert():
    """One transformer layer's weights used by all three layers; factorised embedding (16 -> 32)."""
    cfg = T.AlbertConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=4, intermediate_size=64, max_position_embeddings=SEQ,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0,
                         num_labels=3)
    return SeqClsLoss(T.AlbertForSequenceClassification(cfg))


def build_deberta():
    """Disentangled attention: content-to-position and position-to-content terms over log buckets."""
    cfg = T.DebertaV2Config(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=SEQ, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, relative_attention=True, position_buckets=8,
                            max_relative_positions=SEQ, pos_att_type=["p2c", "c2p"], num_labels=3,
                            pooler_dropout=0.0)
    return SeqClsLoss(T.DebertaV2ForSequenceClassification(cfg))


class Seq2SeqLMLoss(nn.Module):
    """Encoder and decoder both read input_ids; the decoder's logits predict labels."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        logits = self.model(input_ids=input_ids, decoder_input_ids=input_ids, use_cache=False).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def build_t5():
    """Relative position buckets (a learned bias shared by a stack's layers), gated-GELU, RMS norm
    without mean; torch 2.15's dynamo exporter fails on it, so the helper falls back to legacy."""
    cfg = T.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                     num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0,
                     feed_forward_proj="gated-gelu", use_cache=False, decoder_start_token_id=0)
    return Seq2SeqLMLoss(T.T5ForConditionalGeneration(cfg))


def build_swin():
    """Window attention with cyclic shifts (roll), relative position bias tables, patch merging."""
    cfg = T.SwinConfig(image_size=16, patch_size=2, num_channels=3, embed_dim=16, depths=[1, 1],
                       num_heads=[2, 4], window_size=4, mlp_ratio=2.0, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0, drop_path_rate=0.0, num_labels=10)
    return ImageClsLoss(T.SwinForImageClassification(cfg))


class PixArtLoss(nn.Module):
    """diffusers' PixArt-alpha transformer (patch embedding, adaLN-single timestep modulation, cross
    attention to a caption, unpatchify by einsum) trained as a denoiser: MSE to a target. It ends
    with squeeze(1) on its 16-wide patch axis, a no-op torch's exporter writes as an ONNX Squeeze."""

    def __init__(self):
        super().__init__()
        import diffusers  # only this model needs it
        self.m = diffusers.PixArtTransformer2DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, num_layers=2,
            cross_attention_dim=16, sample_size=8, patch_size=2, caption_channels=24, norm_num_groups=4)

    def forward(self, sample, timestep, encoder_hidden_states, target):
        out = self.m(sample, encoder_hidden_states=encoder_hidden_states, timestep=timestep,
                     added_cond_kwargs={"resolution": None, "aspect_ratio": None}, return_dict=False)[0]
        return F.mse_loss(out, target)


def data_latent(n, seed):
    rs = np.random.RandomState(seed)
    sample = rs.standard_normal((n, 4, 8, 8)).astype(np.float32)
    return {"sample": sample, "timestep": rs.randint(0, 1000, size=n).astype(np.int64),
            "encoder_hidden_states": rs.standard_normal((n, 6, 24)).astype(np.float32),
            "target": (0.5 * sample + 0.3 * rs.standard_normal(sample.shape)).astype(np.float32)}


GRAPH_NODES, GRAPH_EDGES, GRAPH_FEATURES = 12, 30, 8


class GraphSAGE(nn.Module):
    """PyTorch Geometric's SAGEConv with mean then max neighbour aggregation over a batch of random
    12-node graphs (edge lists offset into one block-diagonal graph), classifying every node. PyG's
    max aggregation is scatter_reduce amax with include_self=False (ONNX ScatterElements min then max)."""

    def __init__(self, n_cls=3):
        super().__init__()
        import torch_geometric.nn as G  # only this model needs it
        self.conv1 = G.SAGEConv(GRAPH_FEATURES, 16, aggr="mean")
        self.conv2 = G.SAGEConv(16, n_cls, aggr="max")

    def forward(self, x, edge_index, labels):
        batch = x.shape[0]
        offset = (torch.arange(batch) * GRAPH_NODES).view(batch, 1, 1)
        edges = (edge_index + offset).permute(1, 0, 2).reshape(2, -1)
        h = F.elu(self.conv1(x.reshape(batch * GRAPH_NODES, GRAPH_FEATURES), edges))
        return F.cross_entropy(self.conv2(h, edges), labels.reshape(-1))


def data_graph(n, seed):
    rs = np.random.RandomState(seed)
    x = rs.standard_normal((n, GRAPH_NODES, GRAPH_FEATURES)).astype(np.float32)
    edges = rs.randint(0, GRAPH_NODES, size=(n, 2, GRAPH_EDGES)).astype(np.int64)
    labels = (x[:, :, 0] > 0).astype(np.int64) + (x[:, :, 1] > 0.5).astype(np.int64)
    return {"x": x, "edge_index": edges, "labels": labels}


class TinyUNet(nn.Module):
    """A 2-level encoder/decoder: F.interpolate nearest (scale_factor 2) and bilinear (size), a skip
    connection concatenated after the upsampling, then a per-image class from the decoded 12x12 map."""

    def __init__(self, chans=3, width=4, n_cls=10):
        super().__init__()
        self.enc1 = nn.Conv2d(chans, width, 3, padding=1)
        self.enc2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.dec = nn.Conv2d(3 * width, width, 3, padding=1)
        self.head = nn.Linear(width * 12 * 12, n_cls)

    def forward(self, pixel_values, labels):
        s = torch.relu(self.enc1(pixel_values))                       # (B, w, 8, 8)
        d = torch.relu(self.enc2(F.max_pool2d(s, 2)))                 # (B, 2w, 4, 4)
        u = F.interpolate(d, scale_factor=2.0, mode="nearest")        # (B, 2w, 8, 8)
        u = torch.relu(self.dec(torch.cat([u, s], dim=1)))            # (B, w, 8, 8)
        u = F.interpolate(u, size=(12, 12), mode="bilinear", align_corners=False)
        return F.cross_entropy(self.head(u.flatten(1)), labels)


class RecurrentLM(nn.Module):
    """Recurrent layers as torch.onnx writes them (ONNX LSTM, GRU and, from the legacy exporter,
    RNN nodes, which dscompile imports unrolled): token embedding, a 2-layer LSTM, a bidirectional
    GRU (linear_before_reset), an nn.RNN with ReLU (dynamo unrolls it into MatMuls; the legacy
    exporter writes RNN with activations=["Relu"]), token logits; batch-first."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True)
        self.gru = nn.GRU(24, 12, batch_first=True, bidirectional=True)
        self.rnn = nn.RNN(24, 16, batch_first=True, nonlinearity="relu")
        self.head = nn.Linear(16, VOCAB)

    def forward(self, input_ids, labels):
        y, _ = self.lstm(self.emb(input_ids))                        # (B, SEQ, 24)
        y, _ = self.gru(y)                                           # (B, SEQ, 2 * 12)
        y, _ = self.rnn(y)                                           # (B, SEQ, 16)
        return F.cross_entropy(self.head(y).reshape(-1, VOCAB), labels.reshape(-1))


class TinyVideoNet(nn.Module):
    """A C3D-style video classifier over (B, 3, T=4, 6, 6) clips: a 3x3x3 Conv3d + BatchNorm3d (batch
    statistics, training mode) + ReLU, a spatial-only MaxPool3d, a Conv3d with a temporal stride and
    asymmetric kernel, MaxPool3d(2) with ceil_mode, a global average over (T, H, W) and a Linear head."""

    def __init__(self, chans=3, width=6, n_cls=4):
        super().__init__()
        self.conv1 = nn.Conv3d(chans, width, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(width)
        self.pool1 = nn.MaxPool3d((1, 2, 2))
        self.conv2 = nn.Conv3d(width, 8, (2, 3, 3), stride=(2, 1, 1), padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d(2, ceil_mode=True)
        self.head = nn.Linear(8, n_cls)

    def forward(self, pixel_values, labels):
        h = self.pool1(torch.relu(self.bn1(self.conv1(pixel_values))))   # (B, w, 4, 3, 3)
        h = self.pool2(torch.relu(self.conv2(h)))                        # (B, 8, 2, 3, 3) -> (B, 8, 1, 2, 2)
        h = F.adaptive_avg_pool3d(h, 1).flatten(1)                       # (B, 8)
        return F.cross_entropy(self.head(h), labels)


def build_efficientnet():
    """HF EfficientNet cut to two MBConv blocks (depthwise 3x3 with a stride-2 ZeroPad2d, squeeze-excite,
    SiLU, BatchNorm in training mode) on 3x8x8 images. Its head pools the 2x2 map with
    nn.AvgPool2d(hidden_dim=64, ceil_mode=True): one 64-tap window longer than the map, which PyTorch and
    ONNX clip to it. initializer_range 0.3: HF's 0.02 with BatchNorm eps 1e-3 shrinks the activations
    layer by layer to ~1e-13 at this size, so the random model would not train."""
    cfg = T.EfficientNetConfig(image_size=8, width_coefficient=0.05, depth_coefficient=1.0, kernel_sizes=[3, 3],
                               in_channels=[160, 160], out_channels=[160, 320], strides=[1, 2], num_block_repeats=[1, 1],
                               expand_ratios=[1, 2], depthwise_padding=[], hidden_dim=64, dropout_rate=0.0,
                               drop_connect_rate=0.0, num_labels=10, initializer_range=0.3)
    return ImageClsLoss(T.EfficientNetForImageClassification(cfg))


def data_video(n, seed, n_cls=4):
    """Clips (3, 4, 6, 6): a per-class template that moves one pixel per frame, plus noise."""
    rs = np.random.RandomState(seed)
    templates = rs.standard_normal((n_cls, 3, 1, 6, 6)).astype(np.float32)
    frames = np.concatenate([np.roll(templates, t, axis=4) for t in range(4)], axis=2)
    y = rs.randint(0, n_cls, size=n).astype(np.int64)
    x = frames[y] + np.float32(0.5) * rs.standard_normal((n, 3, 4, 6, 6)).astype(np.float32)
    return {"pixel_values": x.astype(np.float32), "labels": y}


def build_fnet():
    """FNet's token mixing: Re(FFT over the hidden axis, then over the sequence axis) in place of
    attention, torch.fft.fftn exported as two ONNX DFTs per layer (dscompile imports each as a
    product with its DFT matrix); the fast-path MLM head."""
    cfg = T.FNetConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       max_position_embeddings=SEQ, type_vocab_size=2, hidden_dropout_prob=0.0,
                       use_tpu_fourier_optimizations=False, pad_token_id=0)
    model = T.FNetForMaskedLM(cfg)
    model.fnet.pooler = None  # built by FNetModel, never read by the MLM loss: not a trained parameter
    return MaskedLMLoss(model)


class FreshNormsAndScales(nn.Module):
    """What onnxscript's optimizer folds or merges in a freshly initialised model, restored by
    dscompile (frontend/restore_parameters.h): two GroupNorms whose equal unit weights and zero
    biases merge, and whose affine Unsqueezes fold; a layer scale applied as gamma.view(1, -1, 1, 1);
    a zero conv bias the rewriter drops; a LayerNorm without affine weights next to one with them
    (torchlib's constant unit scale merges with the parameter); Linear on a rank-3 input (a folded
    weight transpose). Loss: cross entropy over 10 classes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gn1 = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        nn.init.zeros_(self.conv2.bias)
        self.gn2 = nn.GroupNorm(2, 8)
        self.gamma = nn.Parameter(torch.full((8,), 0.5))
        self.plain = nn.LayerNorm(8, elementwise_affine=False)
        self.ln = nn.LayerNorm(8)
        self.proj = nn.Linear(8, 8)
        self.cls = nn.Linear(8, 10)

    def forward(self, pixel_values, labels):
        h = F.relu(self.gn1(self.conv1(pixel_values)))
        h = h + self.gamma.view(1, -1, 1, 1) * self.gn2(self.conv2(h))
        t = F.avg_pool2d(h, 4).flatten(2).transpose(1, 2)                   # (N, 16, 8)
        t = self.ln(self.proj(self.plain(t)))
        return F.cross_entropy(self.cls(t.mean(dim=1)), labels)


class TinySuperRes(nn.Module):
    """A super-resolution-style CNN classifier: conv -> per-channel PReLU -> nn.PixelShuffle(2)
    (ONNX DepthToSpace, CRD) -> strided conv -> CELU -> single-slope PReLU -> nn.PixelUnshuffle(2)
    -> linear head. The PReLU slopes start from distinct values (a trained model's), so the export
    helper's map by value can tell them apart from the exporter's other constants."""

    def __init__(self, chans=3, width=8, n_cls=10):
        super().__init__()
        self.conv1 = nn.Conv2d(chans, 4 * width, 3, padding=1)
        self.act1 = nn.PReLU(4 * width)
        self.shuffle = nn.PixelShuffle(2)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.act2 = nn.CELU(0.5)
        self.act3 = nn.PReLU()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.head = nn.Linear(4 * width * 4 * 4, n_cls)
        with torch.no_grad():
            self.act1.weight.copy_(torch.linspace(0.05, 0.4, 4 * width))
            self.act3.weight.fill_(0.3)

    def forward(self, pixel_values, labels):
        h = self.shuffle(self.act1(self.conv1(pixel_values)))        # (B, w, 16, 16)
        h = self.act3(self.act2(self.conv2(h)))                       # (B, w, 8, 8)
        h = self.unshuffle(h)                                         # (B, 4w, 4, 4)
        return F.cross_entropy(self.head(h.flatten(1)), labels)


class TinyDLRM(nn.Module):
    """A DLRM-style recommender: a dense MLP on 4 features, and sparse features through three
    nn.EmbeddingBags: multi-hot bags in mode sum with per-sample weights and offsets from the data
    (each sample's 6 ids split into 2 bags at a per-sample offset, some bags empty), and one id list
    per sample (2-D input: fixed bags of SEQ // 2) in mode mean with padding_idx 0 and in mode max;
    the concatenation feeds a top MLP. torch's exporters write each EmbeddingBag as a Loop over the bags,
    which dscompile imports as a segment reduction (frontend/torch_embedding_bag.h)."""

    IDS = 6

    def __init__(self, dim=8, n_cls=3):
        super().__init__()
        self.dense = nn.Sequential(nn.Linear(4, dim), nn.ReLU())
        self.bag_sum = nn.EmbeddingBag(VOCAB, dim, mode="sum")
        self.bag_mean = nn.EmbeddingBag(VOCAB, dim, mode="mean", padding_idx=0)
        self.bag_max = nn.EmbeddingBag(VOCAB, dim, mode="max")
        self.top = nn.Sequential(nn.Linear(5 * dim, 16), nn.ReLU(), nn.Linear(16, n_cls))

    def forward(self, dense, ids, bag_offsets, id_weights, history, labels):
        b = ids.shape[0]
        # per-sample offsets into the batch's flat id list
        offsets = (bag_offsets + torch.arange(b)[:, None] * self.IDS).reshape(-1)
        s = self.bag_sum(ids.reshape(-1), offsets, per_sample_weights=id_weights.reshape(-1)).reshape(b, -1)
        h = torch.cat([self.dense(dense), s, self.bag_mean(history), self.bag_max(history)], 1)
        return F.cross_entropy(self.top(h), labels)


def data_dlrm(n, seed):
    """The label (0..2) is the first id's residue mod 3, blurred by the dense features; ids repeat
    within bags; history ids are 0 (padding) with probability 0.3."""
    rs = np.random.RandomState(seed)
    ids = rs.randint(0, VOCAB, size=(n, TinyDLRM.IDS)).astype(np.int64)
    split = rs.randint(0, TinyDLRM.IDS + 1, size=n)
    offsets = np.stack([np.zeros(n, dtype=np.int64), split], 1).astype(np.int64)
    weights = rs.uniform(0.5, 1.5, size=(n, TinyDLRM.IDS)).astype(np.float32)
    history = np.where(rs.random_sample((n, SEQ // 2)) < 0.3, 0, rs.randint(1, VOCAB, size=(n, SEQ // 2)))
    labels = (ids[:, 0] % 3).astype(np.int64)
    dense = (rs.standard_normal((n, 4)) + labels[:, None] * 0.5).astype(np.float32)
    return {"dense": dense, "ids": ids, "bag_offsets": offsets, "id_weights": weights,
            "history": history.astype(np.int64), "labels": labels}


class TimmImageLoss(nn.Module):
    """Cross entropy of a timm classifier's logits (timm models take the image positionally)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, labels):
        return F.cross_entropy(self.model(pixel_values), labels)


def build_volo():
    """timm's VOLO (timm 1.0.31) on 1x12x12 images: a conv stem with BatchNorm and a stage of two outlookers
    (outlook attention: per-location attention over 3x3 windows, unfolded and folded back with F.fold =
    ONNX Col2Im, four 3x3 blocks at stride 2 overlapping on 3x3 tokens), average pooling (no
    transformer stage, class-attention layers or aux head, for size)."""
    from timm.models.volo import VOLO
    m = VOLO(layers=(2,), img_size=12, in_chans=1, patch_size=4, stem_hidden_dim=8, embed_dims=(8,), num_heads=(1,),
             downsamples=(False,), outlook_attention=(True,), post_layers=None, use_aux_head=False, global_pool="avg",
             mlp_ratio=2.0, num_classes=10)
    # VOLO adds pos_embed after the first stage's downsample (network index 2), which one stage never
    # reaches: an unused parameter, which timm's own prune_intermediate_layers drops the same way.
    m.pos_embed = None
    return TimmImageLoss(m)


def data_image12_gray(n, seed):
    d = E.data_cnn(n, seed, chans=1, hw=12, n_cls=10)
    return {"pixel_values": d["x"], "labels": d["y"]}


def data_image8(n, seed):
    d = E.data_cnn(n, seed, chans=3, hw=8, n_cls=10)
    return {"pixel_values": d["x"], "labels": d["y"]}


class PadModes(nn.Module):
    """Non-zero padding as users write it: Conv2d padding_mode reflect / replicate / circular,
    nn.ReflectionPad2d, and F.pad replicate / circular on a sequence before a Conv1d(padding_mode=
    "reflect") (ONNX Pad in modes reflect, edge and wrap; the legacy exporter computes its pads and
    writes circular as Slice/Concat)."""

    def __init__(self, chans=3, width=6, n_cls=10):
        super().__init__()
        self.conv1 = nn.Conv2d(chans, width, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate")
        self.conv3 = nn.Conv2d(width, width, 3, padding=1, padding_mode="circular")
        self.pad = nn.ReflectionPad2d((2, 1, 1, 2))
        self.conv4 = nn.Conv2d(width, width, 4)
        self.conv5 = nn.Conv1d(width, width, 5, padding=2, padding_mode="reflect")
        self.head = nn.Linear(width, n_cls)

    def forward(self, pixel_values, labels):
        h = F.gelu(self.conv1(pixel_values))
        h = F.gelu(self.conv2(h)) + h
        h = F.gelu(self.conv3(h))
        h = F.gelu(self.conv4(self.pad(h)))                          # (B, w, 8, 8)
        s = F.pad(h.flatten(2), (3, 1), mode="replicate")             # (B, w, 68)
        s = F.pad(F.gelu(self.conv5(s)), (1, 2), mode="circular")
        return F.cross_entropy(self.head(s.mean(-1)), labels)


def data_audio(n, seed):
    """Noisy sine waves; the class sets the frequency."""
    rs = np.random.RandomState(seed)
    y = rs.randint(0, AUDIO_CLASSES, size=n).astype(np.int64)
    t = np.arange(AUDIO_SAMPLES)[None, :]
    x = np.sin(t * (0.1 + 0.3 * y[:, None])) + 0.1 * rs.standard_normal((n, AUDIO_SAMPLES))
    return {"input_values": x.astype(np.float32), "labels": y}


def data_whisper(n, seed):
    """Decoder: the progressions of data_lm; encoder: 2*SEQ frames of WHISPER_MELS features that
    carry each sequence's step (so the encoder matters) plus noise."""
    d = E.data_gpt(n, seed, vocab=VOCAB, seq=SEQ)
    rs = np.random.RandomState(seed + 1)
    step = (d["targets"][:, 0] - d["idx"][:, 0]) % VOCAB
    t = np.arange(2 * SEQ)[None, None, :]
    f = np.arange(WHISPER_MELS)[None, :, None]
    feats = np.sin(0.3 * step[:, None, None] * t + f) + 0.3 * rs.standard_normal((n, WHISPER_MELS, 2 * SEQ))
    return {"input_features": feats.astype(np.float32), "decoder_input_ids": d["idx"], "labels": d["targets"]}


def data_lm(n, seed):
    d = E.data_gpt(n, seed, vocab=VOCAB, seq=SEQ)
    return {"input_ids": d["idx"], "labels": d["targets"]}


def data_seqcls(n, seed):
    """Label = the progression's step - 1 (0..2), read off the (noisy) token sequence."""
    rs = np.random.RandomState(seed)
    start = rs.randint(0, VOCAB, size=(n, 1))
    step = rs.randint(1, 4, size=(n, 1))
    seqs = (start + step * np.arange(SEQ)[None, :]) % VOCAB
    mask = rs.random_sample(seqs.shape) < 0.05
    seqs = np.where(mask, rs.randint(0, VOCAB, size=seqs.shape), seqs).astype(np.int64)
    return {"input_ids": np.ascontiguousarray(seqs), "labels": (step[:, 0] - 1).astype(np.int64)}


def data_image(n, seed):
    d = E.data_cnn(n, seed, chans=3, hw=16, n_cls=10)
    return {"pixel_values": d["x"], "labels": d["y"]}


# Options a model entry may add as a 4th element: "modes" (the MODES it is exported in; default all)
# and "node_metadata" (the per-node metadata keys kept; default all but the stack trace).
# fx_node is what dscompile reads (nn.Embedding's padding_idx); the rest only names scopes.
FX_ONLY = {"node_metadata": ("pkg.torch.onnx.fx_node",)}
COMPACT = dict(FX_ONLY, modes=("dynamo_default", "helper"))

# name -> (builder, data function, data seed[, options])
MODELS = collections.OrderedDict([
    # every mode; node metadata other than fx_node stripped (what dscompile reads; the rest named
    # scopes and took 5.8 MB of models/current, which travels to GPU hosts within 64 MiB)
    ("gpt2", (build_gpt2, data_lm, 11, FX_ONLY)),
    ("llama", (build_llama, data_lm, 12, FX_ONLY)),
    ("bert", (build_bert, data_seqcls, 13, FX_ONLY)),
    ("vit", (build_vit, data_image, 14, FX_ONLY)),
    ("sdpa", (SDPAModel, data_lm, 15, FX_ONLY)),
    # text sweep: helper and dynamo_default only, node metadata other than fx_node stripped (small files)
    ("qwen2", (build_qwen2, data_lm, 21, COMPACT)),
    ("gemma2", (build_gemma2, data_lm, 24, COMPACT)),
    ("phi", (build_phi, data_lm, 26, COMPACT)),
    ("roberta", (build_roberta, data_lm, 28, COMPACT)),
    # vision/audio sweep (same options)
    # hf_resnet: the helper's file only. In dynamo_default, onnxscript's optimizer folds the BatchNorms
    # (written in inference mode, see frontend RestoreBatchNormTraining) into the convolutions: the
    # file computes another loss, and dscompile refuses it by the rewriter's node metadata.
    ("hf_resnet", (build_hf_resnet, data_image, 31, dict(COMPACT, modes=("helper",)))),
    ("hf_convnext", (build_hf_convnext, data_image, 32, COMPACT)),
    ("whisper", (build_whisper, data_whisper, 33, COMPACT)),
    ("wav2vec2", (build_wav2vec2, data_audio, 34, COMPACT)),
    ("conv_autoencoder", (ConvAutoencoder, data_image, 35, COMPACT)),
    # architecture sweep (same options)
    ("llama_tied", (build_llama_tied, data_lm, 42, COMPACT)),
    ("albert", (build_albert, data_seqcls, 50, COMPACT)),
    ("deberta", (build_deberta, data_seqcls, 52, COMPACT)),
    ("t5", (build_t5, data_lm, 53, COMPACT)),
    ("swin", (build_swin, data_image, 56, COMPACT)),
    # upsampling (ONNX Resize): both exporters, as they write it differently
    ("unet", (TinyUNet, data_image8, 61, dict(COMPACT, modes=("helper", "legacy17")))),
    # F.cross_entropy with label_smoothing (dropped by the dynamo exporter) and probability targets
    ("cross_entropy", (CrossEntropyForms, data_image5, 62, COMPACT)),
    # Tensor.detach(): the exporters drop it, dscompile restores it from the node metadata (dynamo files)
    ("detach", (DetachLosses, data_image8, 63, COMPACT)),
    # recurrent layers (ONNX LSTM/GRU/RNN): the legacy exporter writes nn.RNN as an RNN node; in
    # dynamo_default the exporter's optimizer folds the weights into W/R/B constants, which dscompile
    # restores (frontend/restore_parameters.h)
    ("rnn_lm", (RecurrentLM, data_lm, 62, dict(COMPACT, modes=("dynamo_default", "helper", "legacy17")))),
    # 3-D convolution and pooling (video): the helper's file only; dynamo_default folds the training
    # BatchNorm3d into the conv, as for hf_resnet
    ("video3d", (TinyVideoNet, data_video, 62, dict(COMPACT, modes=("helper",)))),
    # selection (ONNX TopK): a Mixture-of-Experts router. The helper's file only (the size budget of
    # models/current: dynamo_default adds 175 KB and, with its parameters merged, checks no trajectory).
    ("olmoe", (build_olmoe, data_lm, 64, dict(COMPACT, modes=("helper",)))),
    # nn.PReLU (per-channel and single slope), nn.CELU, nn.PixelShuffle (DepthToSpace) and PixelUnshuffle
    ("superres", (TinySuperRes, data_image8, 62, COMPACT)),
    # Pad in modes reflect / edge / wrap (imported as Gathers); the legacy file computes its pads
    ("pad_modes", (PadModes, data_image8, 65, dict(COMPACT, modes=("dynamo_default", "helper", "legacy17")))),
    # diffusers' PixArt (a diffusion transformer); torch.squeeze on a dim that is not 1
    # (frontend/torch_shape_ops.h). The helper's file only: its dynamo_default file (restored, it
    # follows PyTorch) would add 200 KB; fresh_norms covers what its optimizer does.
    ("pixart", (PixArtLoss, data_latent, 66, dict(COMPACT, modes=("helper",)))),
    # PyTorch Geometric's GraphSAGE: mean and max neighbour aggregation (ScatterElements add / min / max)
    ("graph_sage", (GraphSAGE, data_graph, 67, COMPACT)),
    # nn.EmbeddingBag (sum with per_sample_weights and offsets from the data, mean with padding_idx,
    # max): a Loop over the bags (dscompile imports it as a segment reduction). Not legacy17: the
    # legacy exporter refuses padding_idx (tests/frontend/data/embedding_bag has its other forms)
    ("embedding_bag", (TinyDLRM, data_dlrm, 65, COMPACT)),
    # AvgPool2d(hidden_dim, ceil_mode=True): a pooling window longer than its input. The helper's file
    # only: dynamo_default folds the training BatchNorms into the convolutions, as for hf_resnet.
    ("efficientnet", (build_efficientnet, data_image8, 65, dict(COMPACT, modes=("helper",)))),
    # torch.fft (ONNX DFT): FNet, hidden 16, 1 layer
    ("fnet", (build_fnet, data_lm, 66, COMPACT)),
    # F.fold (ONNX Col2Im) in timm's VOLO outlook attention: the helper's file only; dynamo_default folds
    # the stem's training BatchNorm into its conv
    ("volo", (build_volo, data_image12_gray, 65, dict(COMPACT, modes=("helper",)))),
    # Merged, folded and dropped parameters of a fresh model's default dynamo export, which dscompile
    # restores: GroupNorm, a viewed layer scale, LayerNorm with and without affine weights
    ("fresh_norms", (FreshNormsAndScales, data_image, 68, COMPACT)),
    # GPT-NeoX (Pythia): parallel attention and MLP norms on one input, merged by the default export's CSE
    ("gpt_neox", (build_gpt_neox, data_lm, 69, COMPACT)),
])


def build(name):
    torch.manual_seed(0)
    builder, data_fn, seed = MODELS[name][:3]
    return builder().train(), data_fn(NUM_SAMPLES, seed)


def options(name):
    return MODELS[name][3] if len(MODELS[name]) > 3 else {}


# --------------------------------------------------------------------------
# Reference trajectory: reference_trajectories' training loop on the module itself
# --------------------------------------------------------------------------

def train_trajectory(name, module, in_names, data, cfg, steps):
    return R.train_module(name, module, in_names, data, cfg, steps)


# --------------------------------------------------------------------------
# Export in every mode + manifest entries
# --------------------------------------------------------------------------

def _op_counts(m):
    c = collections.Counter()

    def walk(nodes):
        for n in nodes:
            c[(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)
    walk(m.graph.node)
    for f in m.functions:
        walk(f.node)
    return collections.OrderedDict(sorted(c.items()))


class _Quiet:
    """Sends fd 1/2 to a temp file: the legacy exporter prints its whole TorchScript graph on an
    unsupported op (the manifest keeps the error's first line)."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        self.tmp = open(os.devnull, "w")
        os.dup2(self.tmp.fileno(), 1)
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.tmp.close()
        return False


STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def strip_stack_traces(path, keep_keys=None):
    """The dynamo exporter stores each node's Python stack trace (this machine's paths, ~40% of a
    tiny file); the other node metadata (name scopes, fx node, class hierarchy) stays, or only
    `keep_keys` when given. The nodes of subgraphs (Loop and If bodies: torch's embedding_bag) keep
    none with `keep_keys`: dscompile reads the main graph's."""
    m = onnx.load(path)
    changed = False

    def strip(graph, main=True):
        nonlocal changed
        for n in graph.node:
            keep = [p for p in n.metadata_props
                    if p.key != STACK_TRACE_KEY and (keep_keys is None or (main and p.key in keep_keys))]
            if len(keep) != len(n.metadata_props):
                changed = True
                del n.metadata_props[:]
                n.metadata_props.extend(keep)
            for a in n.attribute:
                for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else []) + list(a.graphs):
                    strip(g, False)
    strip(m.graph)
    if changed:
        onnx.save(m, path)


def mode_call(spec):
    if spec is None:
        return "export_for_training()"
    exporter, opset, optimize = spec
    if exporter == "dynamo":
        return ("torch.onnx.export(dynamo=True, opset_version=%s, optimize=%s, dynamic_shapes=batch "
                "on dim 0)" % (opset, optimize))
    return ("torch.onnx.export(dynamo=False, opset_version=%d, training=TRAINING, "
            "do_constant_folding=False, dynamic_axes=batch on dim 0)" % opset)


def _first_line(e):
    for line in str(e).splitlines():
        if line.strip():
            return "%s: %s" % (type(e).__name__, line.strip())
    return type(e).__name__


def _check(path):
    """"ok" or the first line of onnx.checker's complaint (full check: with shape inference)."""
    try:
        onnx.checker.check_model(path, full_check=True)
        return "ok"
    except Exception as e:  # checker and shape inference raise several types
        return _first_line(e)


def describe_file(path, module, rel, mode, call, reference, unused):
    m = onnx.load(path)
    mp = X.map_parameters(m, module, unused=unused)
    ntrain = sum(1 for _, p in module.named_parameters() if p.requires_grad)
    own = not mp["problems"] and len(mp["trainable"]) + len(mp["unused"]) == ntrain
    float_consts = [c for c in mp["constants"] if c["dtype"].startswith("float")]
    return collections.OrderedDict([
        ("file", rel), ("model", os.path.dirname(rel)), ("mode", mode), ("status", "ok"),
        ("exporter_call", call), ("opset", X._opset(m)), ("ir_version", m.ir_version),
        ("bytes", os.path.getsize(path)),
        ("inputs", [i.name for i in m.graph.input]),
        ("outputs", [o.name for o in m.graph.output]),
        ("op_types", _op_counts(m)), ("functions", [f.name for f in m.functions]),
        ("initializers", len(m.graph.initializer)),
        ("torch_trainable_parameters", ntrain),
        ("every_parameter_own_initializer", own),
        ("mapped_by_value", [e for e in mp["trainable"] if e["initializer"] != e["torch_name"]]),
        ("merged_initializers", mp["merged"]),
        ("parameters_without_initializer", mp["missing"]),
        ("parameters_ambiguous", mp["ambiguous"]),
        ("parameter_problems", mp["problems"]),
        ("duplicated_initializers", mp["duplicates"]),
        ("buffer_initializers", mp["buffers"]),
        ("lifted_float_constants", float_consts),
        ("other_constants", len(mp["constants"]) - len(float_consts)),
        ("metadata", X.read_metadata(m) is not None),
        ("onnx_checker", _check(path)),
        ("reference", reference),
    ])


def export_model(name, out_root, log=print):
    module, data = build(name)
    pristine = copy.deepcopy(module)
    mdir = os.path.join(out_root, name)
    if os.path.isdir(mdir):
        shutil.rmtree(mdir)
    os.makedirs(os.path.join(mdir, "data"))
    os.makedirs(os.path.join(mdir, "reference", "trajectories"))
    in_names = X.input_names_of(module, len(data))
    for k in in_names:
        np.save(os.path.join(mdir, "data", k + ".npy"), data[k])
    example = tuple(torch.from_numpy(data[k][:EXAMPLE_BATCH]) for k in in_names)
    reference = os.path.join(name, "reference", "trajectories", CONFIG + ".json")
    unused = X.unused_parameters(pristine, example)
    entries = []
    opts = options(name)
    for mode, spec in MODES.items():
        if mode not in opts.get("modes", MODES):
            continue
        rel = os.path.join(name, "%s.%s.onnx" % (name, mode))
        path = os.path.join(out_root, rel)
        t0 = time.time()
        msgs = []
        call = mode_call(spec)
        try:
            with warnings.catch_warnings(), _Quiet():
                warnings.simplefilter("ignore")
                if spec is None:
                    info = X.export_for_training(module, example, path, log=msgs.append)
                    call = "export_for_training(): " + info["call"]
                else:
                    exporter, opset, optimize = spec
                    X.raw_export(module, example, path, exporter, opset, optimize,
                                 external_data=False, log=msgs.append, fallback=False)
            for msg in msgs:
                log(msg)
            strip_stack_traces(path, opts.get("node_metadata"))
            e = describe_file(path, pristine, rel, mode, call, reference, unused)
        except Exception as exc:  # record what the exporter says, do not hide it
            if os.path.exists(path):
                os.remove(path)
            e = collections.OrderedDict([("file", rel), ("model", name), ("mode", mode),
                                         ("status", "export failed"), ("exporter_call", call),
                                         ("error", X.failure_reason(exc)),
                                         ("reference", reference)])
            if os.environ.get("DSC_EXPORT_TRACEBACK"):
                traceback.print_exc()
        for k in os.listdir(mdir):  # side files of external data are not wanted here
            if k.endswith(".data"):
                raise RuntimeError("%s: the exporter wrote external data %s" % (mdir, k))
        log("%-30s %-14s %5.1fs %s" % (rel, e["status"], time.time() - t0,
                                       e.get("error", "opset %s, %d ops, own initializers: %s"
                                             % (e.get("opset"), sum(e.get("op_types", {}).values()),
                                                e.get("every_parameter_own_initializer")))))
        entries.append(e)
    # every mode exported the same weights: the trajectory is trained from a copy of them
    for (a, p), (b, q) in zip(module.named_parameters(), pristine.named_parameters()):
        assert a == b and torch.equal(p, q), a
    cfg = R.load_config(os.path.join(HERE, "reference_configs", CONFIG + ".json"))
    torch.manual_seed(0)
    res = train_trajectory(name, copy.deepcopy(pristine), in_names, data, cfg, STEPS)
    R.dump_result(res, os.path.join(out_root, reference))
    params = [{"name": n, "shape": list(p.shape), "trainable": p.requires_grad}
              for n, p in pristine.named_parameters()]
    info = collections.OrderedDict([
        ("model", name), ("torch", torch.__version__), ("transformers", T.__version__),
        ("class", type(pristine.model).__name__ if hasattr(pristine, "model") else type(pristine).__name__),
        ("inputs", {k: {"dtype": str(data[k].dtype), "shape": list(data[k].shape)} for k in in_names}),
        ("trainable_count", sum(1 for p in params if p["trainable"])),
        ("trainable_elements", sum(p.numel() for p in pristine.parameters() if p.requires_grad)),
        ("parameters", params),
    ])
    with open(os.path.join(mdir, "reference", "parameters.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    log("%-30s loss[1]=%.6f loss[%d]=%.6f" % (reference, res["loss"][0], STEPS, res["loss"][-1]))
    return entries


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--out", default=os.path.join(HERE, "current"))
    ap.add_argument("--only", action="append", choices=list(MODELS))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    mpath = os.path.join(a.out, "manifest.json")
    manifest = {"files": []}
    if a.only and os.path.exists(mpath):
        with open(mpath) as f:
            manifest = json.load(f)
        manifest["files"] = [e for e in manifest["files"] if e["model"] not in a.only]
    for name in (a.only or MODELS):
        manifest["files"] += export_model(name, a.out)
    order = {m: i for i, m in enumerate(MODELS)}
    modes = {m: i for i, m in enumerate(MODES)}
    manifest["files"].sort(key=lambda e: (order[e["model"]], modes[e["mode"]]))
    manifest["generator"] = "models/export_current.py (torch %s, transformers %s, onnx %s)" % (
        torch.__version__, T.__version__, onnx.__version__)
    manifest["modes"] = {k: (None if v is None else {"exporter": v[0], "opset": v[1], "optimize": v[2]})
                         for k, v in MODES.items()}
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
