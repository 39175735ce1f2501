#pragma once

// The templated half of config.hpp: what ConfigSchema::add<Section>() instantiates.
//
// A section's visit() is run with a collector that records a typed pointer to every member. All
// TOML work (parsing, printing, comparing, environment overrides) then happens once, in
// config.cpp, on that list; so toml++ is included by config.cpp alone and a new section costs
// only this small instantiation.

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <variant>
#include <vector>

namespace hearth::core {

namespace config_detail {

/// One key of a section instance: a pointer to the member, which lives as long as the instance.
using FieldValue =
    std::variant<bool*, std::int64_t*, double*, std::string*, std::vector<std::string>*>;

struct Field {
    std::string_view key;
    FieldInfo info;
    FieldValue value;
};

template <class T>
inline constexpr bool kSupportedField =
    std::is_same_v<T, bool> || std::is_same_v<T, std::int64_t> || std::is_same_v<T, double> ||
    std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<std::string>>;

/// The visitor passed to a section's visit(): collects its keys in declaration order.
struct FieldCollector {
    std::vector<Field>& fields;

    template <class T>
    void operator()(std::string_view key, T& member, FieldInfo info) {
        static_assert(kSupportedField<T>,
                      "config keys are bool, std::int64_t, double, std::string or "
                      "std::vector<std::string>");
        fields.push_back(Field{key, info, &member});
    }
};

template <class Section>
concept HasValidate = requires(const Section& s, ConfigErrors& errors) { s.validate(errors); };

template <class Section>
concept ConfigSection = requires(Section& s, FieldCollector& c) {
    { Section::kName } -> std::convertible_to<std::string_view>;
    { Section::kDescription } -> std::convertible_to<std::string_view>;
    s.visit(c);
} && std::is_default_constructible_v<Section> && std::is_copy_constructible_v<Section>;

}  // namespace config_detail

/// One registered section with its type erased. Instances are passed as void pointers that
/// always point at the Section this object was made for.
struct ConfigSchema::SectionOps {
    SectionOps() = default;
    SectionOps(const SectionOps&) = delete;
    SectionOps& operator=(const SectionOps&) = delete;
    virtual ~SectionOps() = default;

    virtual std::string_view name() const noexcept = 0;
    virtual std::string_view description() const noexcept = 0;
    virtual const std::type_info& type() const noexcept = 0;
    /// A fresh, default-constructed instance.
    virtual std::shared_ptr<void> make() const = 0;
    /// A copy of `section`, so that its keys can be listed without touching the original.
    virtual std::shared_ptr<void> copy(const void* section) const = 0;
    /// The keys of `section` in declaration order, pointing into it.
    virtual std::vector<config_detail::Field> fields(void* section) const = 0;
    /// The section's own cross-key checks; nothing when it has no validate().
    virtual void validate(const void* section, ConfigErrors& errors) const = 0;
};

namespace config_detail {

template <ConfigSection Section>
class SectionOpsFor final : public ConfigSchema::SectionOps {
public:
    std::string_view name() const noexcept override { return Section::kName; }
    std::string_view description() const noexcept override { return Section::kDescription; }
    const std::type_info& type() const noexcept override { return typeid(Section); }

    std::shared_ptr<void> make() const override { return std::make_shared<Section>(); }

    std::shared_ptr<void> copy(const void* section) const override {
        return std::make_shared<Section>(*static_cast<const Section*>(section));
    }

    std::vector<Field> fields(void* section) const override {
        std::vector<Field> out;
        FieldCollector collector{out};
        static_cast<Section*>(section)->visit(collector);
        return out;
    }

    void validate(const void* section, ConfigErrors& errors) const override {
        if constexpr (HasValidate<Section>) {
            static_cast<const Section*>(section)->validate(errors);
        }
    }
};

}  // namespace config_detail

template <class Section>
void ConfigSchema::add() {
    static_assert(config_detail::ConfigSection<Section>,
                  "a config section needs kName, kDescription, a default constructor and "
                  "template <class V> void visit(V&)");
    add_section(std::make_unique<config_detail::SectionOpsFor<Section>>());
}

}  // namespace hearth::core
