#include "launcher/export_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "launcher/config_conversion.h"
#include "launcher/config_json.h"
#include "launcher/json_writer.h"

namespace aoetron {
namespace {

std::string ShapeJson(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string StringArrayJson(const std::vector<std::string>& values) {
  std::vector<std::string> quoted;
  for (const std::string& v : values) quoted.push_back(JsonString(v));
  return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
}

// The SwiGLU tensors of one expert (or dense FFN, or the shared experts) under `prefix`.
void AddSwiGlu(const std::string& prefix, const std::string& gate_name, int64_t gate_in,
               const std::string& gate_in_axis, int64_t d, int64_t width,
               std::vector<ExportedTensorPattern>& out) {
  out.push_back({prefix + "." + gate_name, {gate_in, width}, {gate_in_axis, "hidden unit"}});
  out.push_back({prefix + ".w_p", {d, width}, {"in: model dim", "hidden unit"}});
  out.push_back({prefix + ".w_o", {width, d}, {"hidden unit", "out: model dim"}});
}

// The conventions of the gate weights, for the variant `m` uses.
std::string GateWeightFormula(const ModelConfig& m) {
  if (m.ffn == FfnKind::kAoe && m.aoe_gate == AoeGateVariant::kRelease) {
    return "w = softmax(s over all n_routed_experts)[I], not renormalised over the K";
  }
  if (m.ffn == FfnKind::kRouterMoe && m.router_score == RouterScore::kSigmoid) {
    return "w = v / sum_K(v)";
  }
  return "w = softmax(v) over the K selected";
}

std::string ScoreFormula(const ModelConfig& m) {
  if (m.ffn == FfnKind::kAoe) {
    return "C = x @ w_down; l_i = ||C[:, i*d_low:(i+1)*d_low]||_2 (the L2 norm of expert i's "
           "slice); s = l";
  }
  if (m.router_score == RouterScore::kSigmoid) return "l = x @ router.weight; s = sigmoid(l)";
  return "l = x @ router.weight; s = l";
}

}  // namespace

std::vector<ExportedTensorPattern> ExportedTensorLayout(const ModelConfig& m) {
  const int64_t d = m.d_model, v = m.vocab_size, n = m.n_experts;
  const std::string heads =
      absl::StrCat("head * head_dim + j: head h in [0, ", m.n_heads, ") holds columns [h*",
                   m.head_dim(), ", (h+1)*", m.head_dim(), ")");
  std::vector<ExportedTensorPattern> out;
  out.push_back({"embedding.weight", {v, d}, {"token id", "model dim"}});
  out.push_back({"layers.{l}.attn_norm.weight", {d}, {"model dim"}});
  out.push_back({"layers.{l}.attn.w_qkv",
                 {d, 3, d},
                 {"in: model dim", "0 = q, 1 = k, 2 = v", "out: " + heads}});
  out.push_back({"layers.{l}.attn.w_o", {d, d}, {"in: " + heads, "out: model dim"}});
  out.push_back({"layers.{l}.ffn_norm.weight", {d}, {"model dim"}});
  const std::string layer = "layers.{l}.ffn";
  switch (m.ffn) {
    case FfnKind::kDense:
      AddSwiGlu(layer, "w_g", d, "in: model dim", d, m.d_ffn, out);
      break;
    case FfnKind::kRouterMoe:
      out.push_back({layer + ".router.weight", {d, n}, {"in: model dim", "routed expert"}});
      AddSwiGlu(layer + ".experts.{e}", "w_g", d, "in: model dim", d, m.ExpertWidth(), out);
      break;
    case FfnKind::kAoe:
      out.push_back(
          {layer + ".w_down",
           {d, n * m.d_low},
           {"in: model dim", absl::StrCat("expert * d_low + j: expert i holds columns [i*", m.d_low,
                                          ", (i+1)*", m.d_low, ")")}});
      AddSwiGlu(layer + ".experts.{e}", "w_up", m.d_low, "in: d_low (expert e's C_e)", d,
                m.ExpertWidth(), out);
      break;
  }
  if (m.is_moe() && m.SharedWidth() > 0) {
    AddSwiGlu(layer + ".shared", "w_g", d, "in: model dim", d, m.SharedWidth(), out);
  }
  if (m.has_expert_bias()) {
    out.push_back({layer + ".expert_bias", {n}, {"routed expert"}});
  }
  out.push_back({"final_norm.weight", {d}, {"model dim"}});
  out.push_back({"lm_head.weight", {d, v}, {"in: model dim", "token id"}});
  return out;
}

std::map<std::string, Shape> ExpectedParameterShapes(const ModelConfig& m) {
  std::map<std::string, Shape> shapes;
  for (const ExportedTensorPattern& p : ExportedTensorLayout(m)) {
    const bool per_layer = p.pattern.find("{l}") != std::string::npos;
    const bool per_expert = p.pattern.find("{e}") != std::string::npos;
    for (int64_t l = 0; l < (per_layer ? m.n_layers : 1); ++l) {
      for (int64_t e = 0; e < (per_expert ? m.n_experts : 1); ++e) {
        const std::string name =
            absl::StrReplaceAll(p.pattern, {{"{l}", absl::StrCat(l)}, {"{e}", absl::StrCat(e)}});
        shapes[name] = p.shape;
      }
    }
  }
  return shapes;
}

absl::Status CheckParametersMatchConfig(const ModelConfig& model,
                                        const std::map<std::string, Shape>& saved) {
  const std::map<std::string, Shape> expected = ExpectedParameterShapes(model);
  for (const auto& [name, shape] : expected) {
    const auto it = saved.find(name);
    if (it == saved.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the checkpoint's config describes a tensor '", name, "' ", ShapeJson(shape),
                       " that the checkpoint lacks: the config and the weights disagree"));
    }
    if (it->second != shape) {
      return absl::FailedPreconditionError(
          absl::StrCat("tensor '", name, "' has shape ", ShapeJson(it->second),
                       " in the checkpoint but ", ShapeJson(shape), " by its config"));
    }
  }
  for (const auto& [name, shape] : saved) {
    if (!expected.contains(name)) {
      return absl::FailedPreconditionError(absl::StrCat("the checkpoint holds a parameter '", name,
                                                        "' that its config does not describe"));
    }
  }
  return absl::OkStatus();
}

std::string ExportConfigJson(const config::TrainConfig& config, int64_t step, DType weights_dtype) {
  const ModelConfig m = ModelConfigFromConfig(config);
  const bool aoe = m.ffn == FfnKind::kAoe;
  JsonObjectWriter json(JsonObjectWriter::Layout::kKeyPerLine);
  // Identity.
  json.Raw("architectures", StringArrayJson({"AoetronForCausalLM"}));
  json.String("model_type", "aoetron");
  json.Integer("aoetron_export_version", kExportConfigVersion);
  json.Integer("step", step);
  json.String("torch_dtype", weights_dtype == DType::kBF16 ? "bfloat16" : "float32");
  json.String("weight_layout", "[in, out]: y = x @ W (the transpose of torch.nn.Linear.weight)");
  // The model section as the run had it, every field (defaults included), under its own names.
  AddMessageFields(config.model(), json);
  // What the layers resolve those to.
  json.Integer("head_dim", m.head_dim());
  json.Integer("n_routed_experts", m.is_moe() ? m.n_experts : 0);
  json.Integer("routed_top_k", m.is_moe() ? m.top_k : 0);
  json.Integer("d_expert_resolved", m.SwiGluExpertWidth());
  json.Integer("d_wide_resolved", aoe ? m.ResolvedDWide() : 0);
  json.Integer("expert_width", m.is_moe() ? m.ExpertWidth() : 0);
  json.Integer("d_shared_resolved",
               m.is_moe() && m.n_shared_experts > 0 ? m.SharedWidth() / m.n_shared_experts : 0);
  json.Integer("shared_width", m.is_moe() ? m.SharedWidth() : 0);
  json.Bool("has_expert_bias", m.has_expert_bias());
  json.Number("capacity_factor", m.capacity_factor);
  json.Bool("tie_word_embeddings", false);
  // Conventions: the math the weights assume.
  json.String(
      "block_formula",
      "h = embedding.weight[tokens]; per layer: h = h + attn(rmsnorm(h, attn_norm)); "
      "h = h + ffn(rmsnorm(h, ffn_norm)); logits = rmsnorm(h, final_norm) @ lm_head.weight");
  json.String("norm_formula",
              "rmsnorm(x, w) = x / sqrt(mean(x^2 over the model dim) + norm_eps) * w");
  json.String("attention_formula",
              "qkv = x @ w_qkv.reshape(d_model, 3*d_model) -> [tokens, 3, n_heads, head_dim]; rope "
              "on q and k; causal softmax(q k^T / sqrt(head_dim)) v per head; heads concatenated "
              "in order, then @ w_o; no biases");
  json.String("rope_pairing", "rotate_half");
  json.String("rope_formula",
              "theta_i = rope_theta^(-2i/head_dim) for i in [0, head_dim/2); (a, b) = (v[i], "
              "v[i + head_dim/2]); v'[i] = a*cos(p*theta_i) - b*sin(p*theta_i), v'[i + "
              "head_dim/2] = a*sin(p*theta_i) + b*cos(p*theta_i); p = position from 0 in each "
              "sequence");
  json.String("swiglu_formula", "(silu(x @ w_g) * (x @ w_p)) @ w_o");
  json.String("aoe_expert_formula",
              "(silu(C_e @ w_up) * (x @ w_p)) @ w_o, C_e = x @ w_down[:, e*d_low:(e+1)*d_low]");
  json.String("score_formula", ScoreFormula(m));
  json.String("selection_formula",
              "I = topK(s + expert_bias) over the n_routed_experts (expert_bias = 0 when "
              "has_expert_bias is false), K = routed_top_k; v = s[I]");
  json.String("topk_tie_rule", "among equal scores the lower expert index wins");
  json.String("expert_bias_use",
              "selection only: added to s for topK; the gate weights and the losses read s and l "
              "without it (the aux loss's counts follow the biased selection)");
  json.String("gate_weight_formula", GateWeightFormula(m));
  json.String("combine_formula",
              "y = sum_j w_j * expert_{I_j}(x) + shared(x) (shared: the SwiGLU "
              "layers.{l}.ffn.shared.* of width shared_width on every token, when present)");
  json.String(
      "aux_loss_formula",
      "per layer: aux_loss_coeff * n * sum_i f_i * P_i with n = n_routed_experts, f_i = "
      "count_i / T (count_i: tokens that selected expert i; T: tokens of the batch), "
      "P_i = mean_t q_ti, q = " +
          std::string(m.ffn == FfnKind::kRouterMoe && m.router_score == RouterScore::kSigmoid
                          ? "s / sum_n(s)"
                          : "softmax(l) over all n"));
  json.Integer("aux_loss_load_fraction_sum", m.is_moe() ? m.top_k : 0);
  json.String("z_loss_formula",
              "per layer: z_loss_coeff * mean_t logsumexp(l_t)^2 (l: router logits, or AoE's "
              "norms)");
  json.String("loss_formula",
              "loss = mean over tokens with target >= 0 of logsumexp(logits) - logits[target]; "
              "aux_loss = sum over layers of the aux loss and the z-loss");
  // Tensors.
  JsonObjectWriter layout(JsonObjectWriter::Layout::kKeyPerLine);
  for (const ExportedTensorPattern& p : ExportedTensorLayout(m)) {
    JsonObjectWriter entry;
    entry.Raw("shape", ShapeJson(p.shape));
    entry.Raw("axes", StringArrayJson(p.axes));
    layout.Raw(p.pattern, entry.Finish());
  }
  json.Raw("tensor_layout", absl::StrReplaceAll(layout.Finish(), {{"\n", "\n  "}}));
  json.Raw("train_config", TrainConfigJson(config));
  return json.Finish() + "\n";
}

}  // namespace aoetron
