#include "abi.h"

#include <array>

namespace tollgate {
namespace {

// The names come from the lists in maps/tollgate_abi.h, in enum order.
#define TG_NAME_OF(enumerator, name, description) #name,
constexpr auto kDropReasonNames = std::to_array<std::string_view>({TG_DROP_REASONS(TG_NAME_OF)});
constexpr auto kEventKindNames = std::to_array<std::string_view>({TG_EVENT_KINDS(TG_NAME_OF)});
#undef TG_NAME_OF
static_assert(kDropReasonNames.size() == TG_DROP_REASON_COUNT);
static_assert(kEventKindNames.size() == TG_EVENT_KIND_COUNT);

template <size_t N>
std::string_view name_in(const std::array<std::string_view, N>& names, int index) {
  return index >= 0 && static_cast<size_t>(index) < N ? names[index] : "unknown";
}

}  // namespace

std::string_view drop_reason_name(tg_drop_reason reason) { return name_in(kDropReasonNames, static_cast<int>(reason)); }

std::string_view event_kind_name(tg_event_kind kind) { return name_in(kEventKindNames, static_cast<int>(kind)); }

}  // namespace tollgate
