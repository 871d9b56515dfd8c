// A C++ program (libc++ containers, iostreams, a file through std::fstream), compiled with
// SIMD, bulk memory, sign extension and saturating conversions enabled.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  std::sort(words.begin(), words.end());
  std::map<std::string, int> counts;
  for (const auto& w : words) counts[w]++;
  for (const auto& [w, n] : counts) std::cout << w << "=" << n << "\n";
  std::vector<float> xs(1000);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i) * 0.5f;
  long sum = 0;
  for (float x : xs) sum += static_cast<long>(x);  // a loop the vectorizer turns into SIMD
  std::cout << "sum=" << sum << "\n";
  {
    std::ofstream out("/data/out.txt");
    out << "written by C++\n";
  }
  std::ifstream in("/data/out.txt");
  std::string line;
  std::getline(in, line);
  std::cout << line << std::endl;
  return 0;
}
