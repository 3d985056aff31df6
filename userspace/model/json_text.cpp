#include "json_text.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

namespace tollgate {
namespace {

using nlohmann::json;

// Builds the value as nlohmann's own DOM parser does, and besides knows the
// path of the value being read (for errors) and bounds the depth.
class Builder {
 public:
  Builder(json& root, size_t max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return put(nullptr); }
  bool boolean(bool value) { return put(value); }
  bool number_integer(json::number_integer_t value) { return put(value); }
  bool number_unsigned(json::number_unsigned_t value) { return put(value); }
  bool number_float(json::number_float_t value, const std::string&) { return put(value); }
  bool string(std::string& value) { return put(std::move(value)); }
  bool binary(json::binary_t& value) { return put(std::move(value)); }
  bool start_object(size_t) { return open(json::object()); }
  bool start_array(size_t) { return open(json::array()); }
  bool key(std::string& key) {
    keys_.back() = key;
    return true;
  }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool parse_error(size_t position, const std::string& token, const json::exception& error) {
    position_ = position;
    if (error.id == 406) {  // out_of_range: a number beyond a double; read whole, point at its start
      message_ = fmt::format("{}: {} is beyond the range of a number", path(), abbreviated(token));
      position_ = position >= token.size() ? position - token.size() + 1 : 0;
    } else {
      message_ = reason(error.what());
    }
    return false;
  }

  size_t position() const { return position_; }
  const std::string& message() const { return message_; }
  bool too_deep() const { return too_deep_; }

 private:
  template <typename Value>
  bool put(Value&& value) {
    slot() = json(std::forward<Value>(value));
    return true;
  }
  bool open(json container) {
    if (open_.size() >= max_depth_) {
      too_deep_ = true;
      message_ = fmt::format("{}: nested deeper than {} levels", path(), max_depth_);
      return false;
    }
    json& placed = slot();
    placed = std::move(container);
    open_.push_back(&placed);
    keys_.emplace_back();
    return true;
  }
  bool close() {
    open_.pop_back();
    keys_.pop_back();
    return true;
  }
  // Where the next value goes: the root, the end of the open array, or the
  // open object's member of the last key.
  json& slot() {
    if (open_.empty()) return root_;
    json& container = *open_.back();
    if (container.is_array()) return container.emplace_back();
    return container[keys_.back()];
  }
  // "services[0].backends[1].weight" for the value being read.
  std::string path() const {
    std::string out;
    for (size_t level = 0; level < open_.size(); ++level) {
      const json& container = *open_[level];
      const bool innermost = level + 1 == open_.size();
      if (container.is_array())
        out += fmt::format("[{}]", innermost ? container.size() : container.size() - 1);
      else
        out += out.empty() ? keys_[level] : "." + keys_[level];
    }
    return out.empty() ? "(top level)" : out;
  }
  static std::string abbreviated(const std::string& token) {
    if (token.size() <= 24) return token;
    return fmt::format("{}... ({} characters)", token.substr(0, 16), token.size());
  }
  // nlohmann's message without its "[json.exception...] parse error at
  // line L, column C: " (we say where ourselves) and without "; last read:
  // '...'" (raw input: long, and maybe not UTF-8).
  static std::string reason(std::string_view what) {
    if (auto colon = what.find(": "); what.starts_with("[json.exception.") && colon != std::string_view::npos)
      what.remove_prefix(colon + 2);
    if (auto last_read = what.find("; last read:"); last_read != std::string_view::npos) {
      std::string out(what.substr(0, last_read));
      if (auto expected = what.find("; expected ", last_read); expected != std::string_view::npos)
        out += what.substr(expected);
      return out;
    }
    return std::string(what);
  }

  json& root_;
  const size_t max_depth_;
  std::vector<json*> open_;
  std::vector<std::string> keys_;  // per open container: its last key (objects)
  size_t position_ = 0;
  std::string message_;
  bool too_deep_ = false;
};

// The offset of the bracket that opens level `max_depth` + 1 (outside
// strings): where a too-deep text goes too deep.
size_t depth_exceeded_at(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return text.size();
}

}  // namespace

std::string text_position(std::string_view text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("line {}, column {}", line, column);
}

Result<json> parse_json_text(std::string_view text, size_t max_depth) {
  if (text.starts_with("\xEF\xBB\xBF"))
    return make_error(ErrorKind::invalid,
                      "line 1, column 1: starts with a UTF-8 byte-order mark (EF BB BF); JSON takes none, remove it");
  json value;
  Builder builder(value, max_depth);
  bool parsed = false;
  try {
    parsed = json::sax_parse(text, &builder);
  } catch (const std::exception& error) {  // not expected: the builder reports errors by returning false
    return make_error(ErrorKind::invalid, "{}", error.what());
  }
  if (parsed) return value;
  // nlohmann's position counts the bytes read, the offending one included.
  const size_t offset = builder.too_deep()       ? depth_exceeded_at(text, max_depth)
                        : builder.position() > 0 ? builder.position() - 1
                                                 : 0;
  return make_error(ErrorKind::invalid, "{}: {}", text_position(text, offset), builder.message());
}

std::string dump_json(const json& value, int indent) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace tollgate
