#include "core/metrics.hpp"
#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <variant>

#include <unistd.h>

#include "util/log.hpp"

namespace hearth::core {
namespace {

enum class MetricType : std::uint8_t { kCounter, kGauge, kHistogram };

std::string_view type_name(MetricType type) {
    switch (type) {
        case MetricType::kCounter:
            return "counter";
        case MetricType::kGauge:
            return "gauge";
        case MetricType::kHistogram:
            return "histogram";
    }
    return "untyped";
}

bool is_alpha_or_underscore(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool valid_metric_name(std::string_view name) {
    if (name.empty() || !(is_alpha_or_underscore(name[0]) || name[0] == ':')) {
        return false;
    }
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_alpha_or_underscore(c) || is_digit(c) || c == ':'; });
}

// Names starting with "__" are reserved by Prometheus for its own labels.
bool valid_label_name(std::string_view name) {
    if (name.empty() || !is_alpha_or_underscore(name[0]) || name.starts_with("__")) {
        return false;
    }
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_alpha_or_underscore(c) || is_digit(c); });
}

void append_escaped_label_value(std::string& out, std::string_view value) {
    for (char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
}

// HELP text escapes only backslash and newline (exposition format 0.0.4).
void append_escaped_help(std::string& out, std::string_view help) {
    for (char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

template <class Int>
void append_integer(std::string& out, Int value) {
    char buf[24];
    auto [end, ec] = std::to_chars(std::begin(buf), std::end(buf), value);
    out.append(std::begin(buf), end);
}

// Integral values print without exponent or fraction, as the clients of other languages do; other
// values print in the shortest form that parses back to the same double.
void append_double(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    const double magnitude = std::fabs(value);
    if (magnitude < 1e15 && value == std::trunc(value)) {
        append_integer(out, static_cast<std::int64_t>(value));
        return;
    }
    char buf[64];
    const auto format = magnitude >= 1e-4 && magnitude < 1e15 ? std::chars_format::fixed
                                                              : std::chars_format::general;
    // 64 bytes hold any double in either form, so the conversion cannot fail.
    const auto result = std::to_chars(std::begin(buf), std::end(buf), value, format);
    out.append(std::begin(buf), result.ptr);
}

struct LabelText {
    std::string key;   // canonical (sorted by name), to recognise the same series in any order
    std::string text;  // `a="1",b="2"` in the caller's order, escaped, without braces
};

// Empty string on success, otherwise why the labels are rejected.
std::string check_labels(const Labels& labels, bool histogram) {
    std::set<std::string_view> names;
    for (const auto& [name, value] : labels) {
        if (!valid_label_name(name)) {
            return "invalid label name '" + name + "'";
        }
        if (histogram && name == "le") {
            return "label 'le' is reserved for histogram buckets";
        }
        if (!names.insert(name).second) {
            return "label '" + name + "' given twice";
        }
    }
    return {};
}

LabelText label_text(const Labels& labels) {
    LabelText result;
    for (const auto& [name, value] : labels) {
        if (!result.text.empty()) {
            result.text += ',';
        }
        result.text += name;
        result.text += "=\"";
        append_escaped_label_value(result.text, value);
        result.text += '"';
    }
    std::vector<const std::pair<std::string, std::string>*> sorted;
    sorted.reserve(labels.size());
    for (const auto& label : labels) {
        sorted.push_back(&label);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (const auto* label : sorted) {
        result.key += label->first;
        result.key += "=\"";
        append_escaped_label_value(result.key, label->second);
        result.key += "\",";
    }
    return result;
}

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   std::string_view labels, std::string_view extra_label) {
    out += name;
    out += suffix;
    if (!labels.empty() || !extra_label.empty()) {
        out += '{';
        out += labels;
        if (!labels.empty() && !extra_label.empty()) {
            out += ',';
        }
        out += extra_label;
        out += '}';
    }
    out += ' ';
}

}  // namespace

// ---- Histogram ----

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
    if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) {
        bounds_.pop_back();
    }
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
        if (!std::isfinite(bounds_[i])) {
            throw std::invalid_argument("histogram bounds must be finite");
        }
        if (i > 0 && !(bounds_[i - 1] < bounds_[i])) {
            throw std::invalid_argument("histogram bounds must be strictly increasing");
        }
    }
    counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double value) noexcept {
    if (std::isnan(value)) {
        return;
    }
    // A bucket counts values <= its bound, hence the first bound not below the value.
    const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
    counts_[static_cast<std::size_t>(bucket)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot snap;
    snap.upper_bounds = bounds_;
    snap.cumulative_counts.reserve(bounds_.size() + 1);
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        total += counts_[i].load(std::memory_order_relaxed);
        snap.cumulative_counts.push_back(total);
    }
    snap.count = total;
    snap.sum = sum_.load(std::memory_order_relaxed);
    return snap;
}

std::vector<double> Histogram::latency_seconds_bounds() {
    return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

// ---- MetricsRegistry ----

struct MetricsRegistry::Impl {
    struct Series {
        LabelText labels;
        std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>>
            metric;
    };
    struct Family {
        std::string help;
        MetricType type = MetricType::kCounter;
        std::vector<double> bounds;  // histograms only
        std::vector<Series> series;  // registration order, which is the rendering order
        std::map<std::string, std::size_t, std::less<>> by_key;
    };

    // A sample from a collector, kept only for the render that produced it.
    struct Collected {
        std::string name;
        std::string help;
        MetricType type = MetricType::kGauge;
        LabelText labels;
        double value = 0;
    };

    class CollectingWriter final : public MetricsWriter {
    public:
        void gauge(std::string_view name, std::string_view help, double value,
                   const Labels& labels) override {
            add(name, help, MetricType::kGauge, value, labels);
        }
        void counter(std::string_view name, std::string_view help, double value,
                     const Labels& labels) override {
            add(name, help, MetricType::kCounter, value, labels);
        }

        std::vector<Collected> samples;
        std::vector<std::string> rejected;  // why, for the log

    private:
        void add(std::string_view name, std::string_view help, MetricType type, double value,
                 const Labels& labels) {
            if (!valid_metric_name(name)) {
                rejected.push_back("invalid metric name '" + std::string(name) + "'");
                return;
            }
            if (auto why = check_labels(labels, false); !why.empty()) {
                rejected.push_back(std::string(name) + ": " + why);
                return;
            }
            samples.push_back(
                {std::string(name), std::string(help), type, label_text(labels), value});
        }
    };

    // Throws when `name` would render a line that belongs to another family.
    void check_name_collision(std::string_view name, MetricType type) const {
        for (auto suffix : kHistogramSuffixes) {
            if (type == MetricType::kHistogram) {
                if (families.contains(std::string(name) + std::string(suffix))) {
                    throw std::logic_error("metric '" + std::string(name) + "' collides with '" +
                                           std::string(name) + std::string(suffix) + "'");
                }
            }
            if (name.ends_with(suffix)) {
                auto stem = families.find(name.substr(0, name.size() - suffix.size()));
                if (stem != families.end() && stem->second.type == MetricType::kHistogram) {
                    throw std::logic_error("metric '" + std::string(name) +
                                           "' collides with histogram '" + stem->first + "'");
                }
            }
        }
    }

    // The series' metric, read while the lock is held: another thread's registration may grow
    // `series` (moving its elements) as soon as it is released. The metric itself never moves.
    template <class T>
    T& find_or_add(std::string_view name, std::string_view help, MetricType type,
                   const Labels& labels, const std::vector<double>* bounds) {
        if (!valid_metric_name(name)) {
            throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
        }
        if (auto why = check_labels(labels, type == MetricType::kHistogram); !why.empty()) {
            throw std::invalid_argument("metric '" + std::string(name) + "': " + why);
        }
        auto text = label_text(labels);

        std::lock_guard lock(mutex);
        auto it = families.find(name);
        if (it == families.end()) {
            check_name_collision(name, type);
            Family family;
            family.help = std::string(help);
            family.type = type;
            if (bounds != nullptr) {
                family.bounds = *bounds;
            }
            it = families.emplace(std::string(name), std::move(family)).first;
        }
        Family& family = it->second;
        if (family.type != type) {
            throw std::logic_error("metric '" + std::string(name) +
                                   "' is already registered as a " +
                                   std::string(type_name(family.type)));
        }
        if (bounds != nullptr && family.bounds != *bounds) {
            throw std::logic_error("histogram '" + std::string(name) +
                                   "' is already registered with other bounds");
        }
        if (auto found = family.by_key.find(text.key); found != family.by_key.end()) {
            return *std::get<std::unique_ptr<T>>(family.series[found->second].metric);
        }
        Series series{std::move(text), {}};
        switch (type) {
            case MetricType::kCounter:
                series.metric = std::make_unique<Counter>();
                break;
            case MetricType::kGauge:
                series.metric = std::make_unique<Gauge>();
                break;
            case MetricType::kHistogram:
                series.metric = std::make_unique<Histogram>(family.bounds);
                break;
        }
        family.by_key.emplace(series.labels.key, family.series.size());
        family.series.push_back(std::move(series));
        return *std::get<std::unique_ptr<T>>(family.series.back().metric);
    }

    mutable std::mutex mutex;
    std::map<std::string, Family, std::less<>> families;
    std::vector<std::function<void(MetricsWriter&)>> collectors;
};

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  const Labels& labels) {
    return impl_->find_or_add<Counter>(name, help, MetricType::kCounter, labels, nullptr);
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    return impl_->find_or_add<Gauge>(name, help, MetricType::kGauge, labels, nullptr);
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::vector<double> upper_bounds, const Labels& labels) {
    // Normalised (and validated) the way the Histogram itself does, so that equal bound lists
    // compare equal however the caller wrote the +Inf.
    const Histogram probe(std::move(upper_bounds));
    return impl_->find_or_add<Histogram>(name, help, MetricType::kHistogram, labels,
                                         &probe.upper_bounds());
}

void MetricsRegistry::add_collector(std::function<void(MetricsWriter&)> collect) {
    std::lock_guard lock(impl_->mutex);
    impl_->collectors.push_back(std::move(collect));
}

std::string MetricsRegistry::render() const {
    // Collectors run unlocked: they may be slow (they read /proc) and may register metrics.
    std::vector<std::function<void(MetricsWriter&)>> collectors;
    {
        std::lock_guard lock(impl_->mutex);
        collectors = impl_->collectors;
    }
    std::vector<Impl::Collected> collected;
    std::vector<std::string> rejected;
    for (auto& collect : collectors) {
        Impl::CollectingWriter writer;
        try {
            collect(writer);
        } catch (const std::exception& e) {
            rejected.push_back(std::string("collector threw: ") + e.what());
            continue;
        }
        std::move(writer.samples.begin(), writer.samples.end(), std::back_inserter(collected));
        std::move(writer.rejected.begin(), writer.rejected.end(), std::back_inserter(rejected));
    }

    struct View {
        const Impl::Family* family = nullptr;
        std::string_view help;
        MetricType type = MetricType::kGauge;
        std::vector<const Impl::Collected*> extra;
        std::set<std::string_view> extra_keys;
    };
    std::string out;
    {
        std::lock_guard lock(impl_->mutex);
        std::map<std::string_view, View> views;
        for (const auto& [name, family] : impl_->families) {
            views.emplace(name, View{&family, family.help, family.type, {}, {}});
        }
        for (const auto& sample : collected) {
            bool collides = false;
            for (auto suffix : kHistogramSuffixes) {
                const std::string_view name = sample.name;
                if (name.ends_with(suffix)) {
                    auto stem = impl_->families.find(name.substr(0, name.size() - suffix.size()));
                    collides = collides || (stem != impl_->families.end() &&
                                            stem->second.type == MetricType::kHistogram);
                }
            }
            auto it = views.find(sample.name);
            if (it != views.end() && it->second.type != sample.type) {
                rejected.push_back("'" + sample.name + "' collected as " +
                                   std::string(type_name(sample.type)) + " but registered as " +
                                   std::string(type_name(it->second.type)));
                continue;
            }
            const bool duplicate =
                it != views.end() && ((it->second.family != nullptr &&
                                       it->second.family->by_key.contains(sample.labels.key)) ||
                                      it->second.extra_keys.contains(sample.labels.key));
            if (collides || duplicate) {
                const auto braced =
                    sample.labels.text.empty() ? "" : "{" + sample.labels.text + "}";
                rejected.push_back("'" + sample.name + braced + "' collides with another series");
                continue;
            }
            if (it == views.end()) {
                it = views.emplace(sample.name, View{nullptr, sample.help, sample.type, {}, {}})
                         .first;
            }
            it->second.extra_keys.insert(sample.labels.key);
            it->second.extra.push_back(&sample);
        }

        out.reserve(4096);
        for (const auto& [name, view] : views) {
            out += "# HELP ";
            out += name;
            out += ' ';
            append_escaped_help(out, view.help);
            out += "\n# TYPE ";
            out += name;
            out += ' ';
            out += type_name(view.type);
            out += '\n';
            if (view.family != nullptr) {
                for (const auto& series : view.family->series) {
                    const std::string_view labels = series.labels.text;
                    if (const auto* counter =
                            std::get_if<std::unique_ptr<Counter>>(&series.metric)) {
                        append_sample(out, name, "", labels, "");
                        append_integer(out, (*counter)->value());
                    } else if (const auto* gauge =
                                   std::get_if<std::unique_ptr<Gauge>>(&series.metric)) {
                        append_sample(out, name, "", labels, "");
                        append_integer(out, (*gauge)->value());
                    } else {
                        const auto snap =
                            std::get<std::unique_ptr<Histogram>>(series.metric)->snapshot();
                        std::string le;
                        for (std::size_t i = 0; i < snap.cumulative_counts.size(); ++i) {
                            le = "le=\"";
                            if (i < snap.upper_bounds.size()) {
                                append_double(le, snap.upper_bounds[i]);
                            } else {
                                le += "+Inf";
                            }
                            le += '"';
                            append_sample(out, name, "_bucket", labels, le);
                            append_integer(out, snap.cumulative_counts[i]);
                            out += '\n';
                        }
                        append_sample(out, name, "_sum", labels, "");
                        append_double(out, snap.sum);
                        out += '\n';
                        append_sample(out, name, "_count", labels, "");
                        append_integer(out, snap.count);
                    }
                    out += '\n';
                }
            }
            for (const auto* sample : view.extra) {
                append_sample(out, name, "", sample->labels.text, "");
                append_double(out, sample->value);
                out += '\n';
            }
        }
    }
    if (!rejected.empty()) {
        // A programming error in a collector; the rest of the scrape is still valid.
        util::logger("metrics")->warn("{} collected sample(s) left out, first: {}", rejected.size(),
                                      rejected.front());
    }
    return out;
}

// ---- process metrics ----

namespace {

std::string read_small_file(const std::string& path) {
    // /proc files report size 0, so read until end rather than by size.
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return {};
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string_view> split_spaces(std::string_view text) {
    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto start = text.find_first_not_of(" \t\n", pos);
        if (start == std::string_view::npos) {
            break;
        }
        auto end = text.find_first_of(" \t\n", start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        fields.push_back(text.substr(start, end - start));
        pos = end;
    }
    return fields;
}

std::uint64_t parse_u64(std::string_view text) {
    std::uint64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

}  // namespace

ProcessStats read_process_stats(int pid) {
    const std::string dir = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
    ProcessStats stats;
    const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    const long page_size = ::sysconf(_SC_PAGESIZE);

    // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
    const std::string stat = read_small_file(dir + "/stat");
    if (auto close = stat.rfind(')'); close != std::string::npos) {
        const auto fields = split_spaces(std::string_view(stat).substr(close + 1));
        // fields[0] is field 3 (state) of proc(5).
        constexpr std::size_t kUtime = 14 - 3, kStime = 15 - 3, kStarttime = 22 - 3,
                              kVsize = 23 - 3, kRss = 24 - 3;
        if (fields.size() > kRss && ticks_per_second > 0 && page_size > 0) {
            const auto ticks = static_cast<double>(ticks_per_second);
            stats.cpu_seconds =
                static_cast<double>(parse_u64(fields[kUtime]) + parse_u64(fields[kStime])) / ticks;
            stats.virtual_bytes = parse_u64(fields[kVsize]);
            stats.resident_bytes = parse_u64(fields[kRss]) * static_cast<std::uint64_t>(page_size);
            const std::string proc_stat = read_small_file("/proc/stat");
            const auto pos = proc_stat.find("\nbtime ");
            const auto btime_fields =
                pos == std::string::npos
                    ? std::vector<std::string_view>{}
                    : split_spaces(std::string_view(proc_stat).substr(pos + 7, 32));
            if (!btime_fields.empty()) {
                const auto btime = parse_u64(btime_fields[0]);
                stats.start_time_seconds =
                    static_cast<double>(btime) +
                    static_cast<double>(parse_u64(fields[kStarttime])) / ticks;
            }
        }
    }

    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir + "/fd", ec), end; !ec && it != end;
         it.increment(ec)) {
        ++stats.open_fds;
    }

    const std::string limits = read_small_file(dir + "/limits");
    if (auto pos = limits.find("Max open files"); pos != std::string::npos) {
        const auto line =
            std::string_view(limits).substr(pos + 14, limits.find('\n', pos) - pos - 14);
        const auto fields = split_spaces(line);
        if (!fields.empty()) {
            stats.max_fds = fields[0] == "unlimited" ? std::numeric_limits<std::uint64_t>::max()
                                                     : parse_u64(fields[0]);
        }
    }
    return stats;
}

void register_process_metrics(MetricsRegistry& registry) {
    // /proc reads are served from kernel memory, never from disk: cheap enough for a scrape.
    registry.add_collector([](MetricsWriter& out) {
        const auto stats = read_process_stats(0);
        out.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                    stats.cpu_seconds);
        out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                  static_cast<double>(stats.resident_bytes));
        out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                  static_cast<double>(stats.virtual_bytes));
        out.gauge("process_open_fds", "Number of open file descriptors.",
                  static_cast<double>(stats.open_fds));
        out.gauge("process_max_fds", "Maximum number of open file descriptors.",
                  static_cast<double>(stats.max_fds));
        out.gauge("process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.",
                  stats.start_time_seconds);
    });
}

}  // namespace hearth::core
